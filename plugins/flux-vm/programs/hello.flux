; hello — sends "hello" to itself on channel 1, one character at a time, and reads it back.
; expect: [104, 101, 108, 108, 111]
        push 'h'
        signal 1
        push 'e'
        signal 1
        push 'l'
        signal 1
        push 'l'
        signal 1
        push 'o'
        signal 1
        listen 1
        listen 1
        listen 1
        listen 1
        listen 1
        halt
