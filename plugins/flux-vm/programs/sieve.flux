; sieve — counts the primes below 30 with the sieve of Eratosthenes. Word i of memory
; marks i composite; i, j and the count live at bytes 4000, 4004 and 4008.
; expect: [10]
        push 2
        store 4000          ; i = 2
outer:  load 4000
        push 30
        lt
        push 0
        or                  ; Z when i >= 30
        jz done
        load 4000
        peek                ; marked?
        push 0
        eq
        jnz next            ; composite: skip it
        load 4008
        inc
        store 4008          ; count a prime
        load 4000
        dup
        mul
        store 4004          ; j = i * i
inner:  load 4004
        push 30
        lt
        push 0
        or
        jz next             ; j >= 30: this prime is done
        push 1
        load 4004
        poke                ; mark word j
        load 4004
        load 4000
        add
        store 4004          ; j += i
        jmp inner
next:   load 4000
        inc
        store 4000
        jmp outer
done:   load 4008
        halt
