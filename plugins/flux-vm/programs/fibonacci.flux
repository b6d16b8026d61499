; fibonacci — the 10th Fibonacci number. The stack holds [F(n) F(n+1)]; the round
; counter lives in memory at byte 0.
; expect: [55]
        push 10
        store 0             ; rounds left
        push 0              ; F(0)
        push 1              ; F(1)
round:  swap                ; [b a]
        over                ; [b a b]
        add                 ; [b a+b]
        load 0
        dec                 ; Z when no rounds are left
        dup
        store 0
        jnz round           ; pops the copy, branches on DEC's Z flag
        pop                 ; drop F(11)
        halt
