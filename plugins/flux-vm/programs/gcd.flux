; gcd — Euclid's algorithm on 48 and 18: (a, b) -> (b, a mod b) until b = 0.
; expect: [6]
        push 48
        push 18
test:   dup
        push 0
        eq                  ; Z set when b = 0
        jnz step            ; b != 0: another step
        pop
        halt
step:   swap                ; [b a]
        over                ; [b a b]
        mod                 ; [b a%b]
        jmp test
