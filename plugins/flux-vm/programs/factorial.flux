; factorial — 7! by repeated multiplication; n lives in memory at byte 0.
; expect: [5040]
        push 7
        store 0
        push 1              ; the product
again:  load 0
        mul
        load 0
        dec
        dup
        store 0
        jnz again
        halt
