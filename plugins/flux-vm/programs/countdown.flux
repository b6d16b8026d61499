; countdown — the benchmark loop: three instructions per round, 100 000 rounds.
; expect: [0]
        push 100000
tick:   dec
        dup
        jnz tick
        halt
