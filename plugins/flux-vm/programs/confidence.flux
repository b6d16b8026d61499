; confidence — the machine's confidence in permille: starts at 1000, CONF_MUL scales
; it (500 -> 0.5, then 800 -> 0.8), CONF_SET clamps to 0..1000.
; expect: [1000, 400, 1000]
        conf_get            ; 1000
        push 500
        conf_mul            ; 500
        push 800
        conf_mul            ; 400
        conf_get
        push 1200
        conf_set            ; clamped to 1000
        conf_get
        halt
