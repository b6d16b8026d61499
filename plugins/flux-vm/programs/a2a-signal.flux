; a2a-signal — agent-to-agent channels: SIGNAL and BROADCAST deliver to channel 3
; (standalone, the agent hears itself), LISTEN reads oldest first and 0 when empty.
; expect: [15]
        push 7
        signal 3
        push 8
        broadcast 3
        listen 3            ; 7
        listen 3            ; 8
        listen 3            ; 0: nothing left
        add
        add
        halt
