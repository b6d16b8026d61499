; fuel-loop — a loop that would never end, stopped by a fuel budget of 50.
; expect-error: FUEL_EXHAUSTED
        fuel.set 50
spin:   jmp spin
