; subroutine — CALL and RET use the return stack, never the data stack.
; expect: [81, 16]
        push 9
        call square
        push 4
        call square
        halt
square: dup
        mul
        ret
