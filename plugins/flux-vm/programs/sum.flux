; sum — 1 + 2 + … + 100, counting down; i lives in memory at byte 0.
; expect: [5050]
        push 100
        store 0
        push 0              ; the sum
more:   load 0
        add
        load 0
        dec
        dup
        store 0
        jnz more
        halt
