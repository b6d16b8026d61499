#version 450
// The FLUX stack profile (FLUX.md §2–§10) as a compute shader: one invocation runs one
// job (a program with an initial stack). It must agree with flux-core bit for bit, so
// every rule below mirrors plugins/flux-core/src/{machine,stack}.rs. Where this GPU
// version has smaller limits than the spec (stack, return stack, memory window, channel
// queue, steps per dispatch) or does not implement (the escape prefix), it stops with
// status NEEDS_CPU and a reason, and the host reruns that job on flux-core.

layout(local_size_x = 64, local_size_y = 1, local_size_z = 1) in;

const uint STACK_CAP = 256u;
const uint RET_CAP = 16u;
const uint MEM_WORDS = 64u;      // bytes 0..255 of the 64 KiB memory
const uint CH_CAP = 16u;
const uint RESULT_HEADER = 8u;

// statuses (RESULT word 0)
const uint ST_HALTED = 0u;
const uint ST_BREAK = 1u;
const uint ST_END = 2u;
const uint ST_TRAP = 3u;
const uint ST_NEEDS_CPU = 255u;

// reasons for NEEDS_CPU (RESULT word 1)
const uint WHY_STACK = 1u;
const uint WHY_RETURNS = 2u;
const uint WHY_MEMORY = 3u;
const uint WHY_CHANNELS = 4u;
const uint WHY_ESCAPE = 5u;
const uint WHY_BUDGET = 7u;
const uint WHY_RESULT = 9u;

// traps (FLUX.md §10)
const uint T_STACK_UNDERFLOW = 1u;
const uint T_CALL_STACK_UNDERFLOW = 3u;
const uint T_CALL_STACK_OVERFLOW = 4u;
const uint T_DIV_ZERO = 5u;
const uint T_INVALID_OPCODE = 6u;
const uint T_TRUNCATED = 7u;
const uint T_BAD_JUMP = 8u;
const uint T_MEM_OUT_OF_RANGE = 9u;
const uint T_STEP_LIMIT = 12u;

const uint CANONICAL_NAN = 0x7FC00000u;

struct Job {
    uint code_off;   // byte offset into `code`
    uint code_len;
    uint init_off;   // word offset into `init`
    uint init_len;
};

layout(set = 0, binding = 0) readonly buffer Code { uint code[]; };
layout(set = 0, binding = 1) readonly buffer Jobs { Job jobs[]; };
layout(set = 0, binding = 2) readonly buffer Init { uint init[]; };
layout(set = 0, binding = 3) buffer Results { uint results[]; };
layout(push_constant) uniform Params { uint job_count; uint result_stride; uint step_budget; uint max_steps; uint out_stack; } params;

uint stack[STACK_CAP];
uint returns[RET_CAP];
uint mem[MEM_WORDS];
uint chan_ch[CH_CAP];
uint chan_val[CH_CAP];
uint chan_taken[CH_CAP];

uint code_base;
uint code_len;
uint max_steps;

// The machine (one job per invocation).
uint sp;
uint rp;
uint flags;
uint conf;
uint pc;
uint steps;
uint status;
uint error;
uint fault;
uint chans;
bool done;

uint byte_at(uint pc) {
    uint a = code_base + pc;
    return (code[a >> 2u] >> ((a & 3u) * 8u)) & 0xFFu;
}

uint flags_of(bool z, bool s, bool c, bool o) {
    return (z ? 1u : 0u) | (s ? 2u : 0u) | (c ? 4u : 0u) | (o ? 8u : 0u);
}

uint flags_add(uint a, uint b) {
    uint r = a + b;
    bool carry = r < a;
    bool overflow = ((a ^ r) & (b ^ r) & 0x80000000u) != 0u;
    return flags_of(r == 0u, (r >> 31u) == 1u, carry, overflow);
}

uint flags_sub(uint a, uint b) {
    uint r = a - b;
    bool overflow = ((a ^ b) & (a ^ r) & 0x80000000u) != 0u;
    return flags_of(r == 0u, (r >> 31u) == 1u, a < b, overflow);
}

uint flags_logic(uint r) {
    return flags_of(r == 0u, (r >> 31u) == 1u, false, false);
}







// ---- binary32 arithmetic in integers -------------------------------------------
// Vulkan only promises correctly rounded add/sub/mul for normal numbers, may flush
// denormals, and need not keep NaN or infinities; its division is 2.5 ulp. FLUX wants
// IEEE 754 round-to-nearest-even everywhere (flux-core uses the CPU's), so every
// F-op is done here with integer operations: the same bits on every device.

uint mul_hi_unsigned(uint a, uint b) {
    uint a_lo = a & 0xFFFFu;
    uint a_hi = a >> 16u;
    uint b_lo = b & 0xFFFFu;
    uint b_hi = b >> 16u;
    uint lo_lo = a_lo * b_lo;
    uint hi_lo = a_hi * b_lo;
    uint lo_hi = a_lo * b_hi;
    uint cross = (lo_lo >> 16u) + (hi_lo & 0xFFFFu) + lo_hi;
    return a_hi * b_hi + (hi_lo >> 16u) + (cross >> 16u);
}

// High 32 bits of the signed 64-bit product (for MUL's overflow flags).
uint mul_hi_signed(uint a, uint b) {
    uint hi = mul_hi_unsigned(a, b);
    if ((a >> 31u) == 1u) { hi -= b; }
    if ((b >> 31u) == 1u) { hi -= a; }
    return hi;
}

bool is_nan(uint x) {
    return (x & 0x7F800000u) == 0x7F800000u && (x & 0x007FFFFFu) != 0u;
}

bool is_special(uint x) {
    return (x & 0x7F800000u) == 0x7F800000u;
}

// Shift right by n keeping every bit shifted out as a sticky bit 0.
uint shift_sticky(uint m, uint n) {
    if (n == 0u) { return m; }
    if (n >= 32u) { return m != 0u ? 1u : 0u; }
    uint lost = m & ((1u << n) - 1u);
    return (m >> n) | (lost != 0u ? 1u : 0u);
}

// Round a significand carrying 3 extra bits (guard, round, sticky) to nearest-even and
// pack it. m < 2^27; e is the biased exponent for m's bit 26 (e ≥ 1; with e == 1 and
// bit 26 clear the result is denormal).
uint round_pack(uint s, int e, uint m) {
    uint low = m & 7u;
    m >>= 3u;
    if (low > 4u || (low == 4u && (m & 1u) == 1u)) {
        m += 1u;
        if (m == 0x1000000u) {
            m >>= 1u;
            e += 1;
        }
    }
    if (e >= 255) {
        return (s << 31u) | 0x7F800000u;
    }
    // A normal m has bit 23 set, which adds the 1 that makes (e - 1) the exponent
    // field; a denormal's m < 2^23 leaves the field 0 (and a round-up into 2^23 makes
    // it the smallest normal).
    return (s << 31u) | ((uint(e - 1) << 23u) + m);
}

// Unpack a finite value: significand with its implicit bit, exponent (denormals: 1).
void unpack(uint x, out uint m, out int e) {
    e = int((x >> 23u) & 0xFFu);
    m = x & 0x7FFFFFu;
    if (e == 0) {
        e = 1;
    } else {
        m |= 0x800000u;
    }
}

uint fadd(uint a, uint b) {
    uint sa = a >> 31u;
    uint sb = b >> 31u;
    uint ma;
    uint mb;
    int ea;
    int eb;
    unpack(a, ma, ea);
    unpack(b, mb, eb);
    if (ma == 0u && mb == 0u) {
        return (sa & sb) << 31u; // +0 unless both are -0
    }
    if (eb > ea || (eb == ea && mb > ma)) {
        uint t = ma; ma = mb; mb = t;
        int te = ea; ea = eb; eb = te;
        uint ts = sa; sa = sb; sb = ts;
    }
    uint m = ma << 3u;
    uint n = shift_sticky(mb << 3u, uint(ea - eb));
    int e = ea;
    if (sa == sb) {
        m += n;
        if (m >= 0x8000000u) {
            m = shift_sticky(m, 1u);
            e += 1;
        }
    } else {
        m -= n;
        if (m == 0u) {
            return 0u; // exact cancellation is +0 when rounding to nearest
        }
        int up = min(26 - findMSB(m), e - 1);
        if (up > 0) {
            m <<= uint(up);
            e -= up;
        }
    }
    return round_pack(sa, e, m);
}

uint fmul(uint a, uint b) {
    uint s = (a ^ b) >> 31u;
    uint ma;
    uint mb;
    int ea;
    int eb;
    unpack(a, ma, ea);
    unpack(b, mb, eb);
    if (ma == 0u || mb == 0u) {
        return s << 31u;
    }
    int za = 23 - findMSB(ma);
    int zb = 23 - findMSB(mb);
    ma <<= uint(za);
    mb <<= uint(zb);
    ea -= za;
    eb -= zb;
    int e = ea + eb - 127;
    // P = ma·mb in [2^46, 2^48) as hi:lo; keep 24 bits + 3 extra, the rest as sticky.
    uint lo = ma * mb;
    uint hi = mul_hi_unsigned(ma, mb);
    uint k = 20u;
    if (hi >= 0x8000u) {
        k = 21u;
        e += 1;
    }
    uint m = (hi << (32u - k)) | (lo >> k);
    if ((lo & ((1u << k) - 1u)) != 0u) {
        m |= 1u;
    }
    if (e < 1) {
        m = shift_sticky(m, uint(1 - e));
        e = 1;
    }
    return round_pack(s, e, m);
}

// FADD/FSUB/FMUL with an infinite or NaN operand (IEEE 754 rules, canonical NaN).
uint special(uint op, uint a, uint b) {
    if (is_nan(a) || is_nan(b)) {
        return CANONICAL_NAN;
    }
    if (op == 0x71u) {
        b ^= 0x80000000u; // a - b = a + (-b)
    }
    bool a_inf = is_special(a);
    bool b_inf = is_special(b);
    if (op == 0x72u) {
        bool a_zero = (a & 0x7FFFFFFFu) == 0u;
        bool b_zero = (b & 0x7FFFFFFFu) == 0u;
        if (a_zero || b_zero) {
            return CANONICAL_NAN; // 0 · ∞
        }
        return ((a ^ b) & 0x80000000u) | 0x7F800000u;
    }
    if (a_inf && b_inf) {
        return a == b ? a : CANONICAL_NAN; // ∞ − ∞
    }
    return a_inf ? a : b;
}


// Exactly rounded division by integer long division (denormals included).
uint fdiv(uint a, uint b) {
    uint sign = (a ^ b) & 0x80000000u;
    uint ea = (a >> 23u) & 0xFFu;
    uint eb = (b >> 23u) & 0xFFu;
    uint ma = a & 0x7FFFFFu;
    uint mb = b & 0x7FFFFFu;
    bool a_nan = ea == 255u && ma != 0u;
    bool b_nan = eb == 255u && mb != 0u;
    bool a_inf = ea == 255u && ma == 0u;
    bool b_inf = eb == 255u && mb == 0u;
    bool a_zero = ea == 0u && ma == 0u;
    bool b_zero = eb == 0u && mb == 0u;
    if (a_nan || b_nan || (a_inf && b_inf) || (a_zero && b_zero)) {
        return CANONICAL_NAN;
    }
    if (a_inf || b_zero) {
        return sign | 0x7F800000u;
    }
    if (a_zero || b_inf) {
        return sign;
    }
    // Normalise so both significands have their leading 1 at bit 23 (denormals are
    // shifted up and their exponent lowered to match); e is the biased result exponent.
    int e = int(ea) - int(eb) + 127;
    if (ea == 0u) {
        int z = 23 - findMSB(ma);
        ma <<= uint(z);
        e += 1 - z;
    } else {
        ma |= 0x800000u;
    }
    if (eb == 0u) {
        int z = 23 - findMSB(mb);
        mb <<= uint(z);
        e -= 1 - z;
    } else {
        mb |= 0x800000u;
    }
    if (ma < mb) {
        ma <<= 1u;
        e -= 1;
    }
    // ma/mb in [1, 2). Long division 7 bits at a time (r < mb < 2^24, so r·2^7 fits):
    // q = floor(ma·2^28 / mb) has 29 bits; keep 25 (24 + a guard bit), the rest and
    // the remainder are sticky. Straight-line code: no loop for a driver to cut short.
    uint q = (ma << 7u) / mb;
    uint r = (ma << 7u) % mb;
    q = (q << 7u) | ((r << 7u) / mb);
    r = (r << 7u) % mb;
    q = (q << 7u) | ((r << 7u) / mb);
    r = (r << 7u) % mb;
    q = (q << 7u) | ((r << 7u) / mb);
    r = (r << 7u) % mb;
    bool sticky = r != 0u || (q & 15u) != 0u;
    q >>= 4u;
    if (e <= 0) {
        // A denormal result: shift right, keeping what falls off as sticky, round once.
        uint shift = uint(1 - e);
        if (shift >= 26u) {
            sticky = sticky || q != 0u;
            q = 0u;
        } else {
            sticky = sticky || (q & ((1u << shift) - 1u)) != 0u;
            q >>= shift;
        }
        uint g = q & 1u;
        q >>= 1u;
        if (g == 1u && (sticky || (q & 1u) == 1u)) {
            q += 1u;
        }
        // Rounding up into the smallest normal carries into the exponent field by itself.
        return sign | q;
    }
    uint guard = q & 1u;
    q >>= 1u;
    if (guard == 1u && (sticky || (q & 1u) == 1u)) {
        q += 1u;
        if (q == 0x1000000u) {
            q >>= 1u;
            e += 1;
        }
    }
    if (e >= 255) {
        return sign | 0x7F800000u;
    }
    return sign | (uint(e) << 23u) | (q & 0x7FFFFFu);
}

uint float_op(uint op, uint a, uint b) {
    if (op == 0x73u) {
        return fdiv(a, b);
    }
    if (is_special(a) || is_special(b)) {
        return special(op, a, b);
    }
    if (op == 0x70u) {
        return fadd(a, b);
    }
    if (op == 0x71u) {
        return fadd(a, b ^ 0x80000000u);
    }
    return fmul(a, b);
}

void step_once() {
    if (pc >= code_len) {
        done = true;
        return;
    }
    if (steps >= max_steps) {
        status = ST_TRAP;
        error = T_STEP_LIMIT;
        fault = pc;
        return;
    }
    steps += 1u;
    uint op = byte_at(pc);
    uint trap = 0u;
    uint why = 0u;
    uint len = 1u;
    if (op == 0x40u || op == 0x41u || (op >= 0x50u && op <= 0x53u)) {
        len = 3u;
    } else if (op == 0x55u) {
        len = 5u;
    } else if (op >= 0x90u && op <= 0x92u) {
        len = 2u;
    }
    bool known = op <= 0x02u || (op >= 0x10u && op <= 0x17u) || (op >= 0x20u && op <= 0x25u)
        || (op >= 0x30u && op <= 0x35u) || (op >= 0x40u && op <= 0x41u) || op == 0x43u || op == 0x44u
        || (op >= 0x50u && op <= 0x56u) || (op >= 0x60u && op <= 0x63u) || (op >= 0x70u && op <= 0x73u)
        || (op >= 0x80u && op <= 0x82u) || (op >= 0x90u && op <= 0x92u);
    uint next = pc + len;
    if (op == 0xFFu) {
        why = WHY_ESCAPE;
    } else if (!known) {
        trap = T_INVALID_OPCODE;
    } else if (next > code_len) {
        trap = T_TRUNCATED;
    } else if (op == 0x00u) {
        status = ST_HALTED;
    } else if (op == 0x01u) {
    } else if (op == 0x02u) {
        status = ST_BREAK;
    } else if (op >= 0x10u && op <= 0x14u || op >= 0x20u && op <= 0x25u
               || op >= 0x30u && op <= 0x32u || op == 0x34u || op == 0x35u
               || op >= 0x70u && op <= 0x73u) {
        // binary ( a b -- r )
        if (sp < 2u) {
            trap = T_STACK_UNDERFLOW;
        } else {
            uint a = stack[sp - 2u];
            uint b = stack[sp - 1u];
            uint r = 0u;
            bool keep_flags = false;
            if (op == 0x10u) { r = a + b; flags = flags_add(a, b); }
            else if (op == 0x11u) { r = a - b; flags = flags_sub(a, b); }
            else if (op == 0x12u) {
                r = a * b;
                uint hi = mul_hi_signed(a, b);
                bool lost = hi != ((r >> 31u) == 1u ? 0xFFFFFFFFu : 0u);
                flags = flags_of(r == 0u, (r >> 31u) == 1u, lost, lost);
            }
            else if (op == 0x13u || op == 0x14u) {
                if (b == 0u) {
                    trap = T_DIV_ZERO;
                } else {
                    int ia = int(a);
                    int ib = int(b);
                    bool ovf = a == 0x80000000u && b == 0xFFFFFFFFu;
                    if (op == 0x13u) {
                        r = ovf ? a : uint(ia / ib);
                    } else {
                        r = ovf ? 0u : uint(ia - (ia / ib) * ib);
                    }
                    flags = flags_of(r == 0u, (r >> 31u) == 1u, false, ovf && op == 0x13u);
                }
            }
            else if (op >= 0x20u && op <= 0x25u) {
                int ia = int(a);
                int ib = int(b);
                bool t = (op == 0x20u) ? ia == ib : (op == 0x21u) ? ia != ib : (op == 0x22u) ? ia < ib
                       : (op == 0x23u) ? ia <= ib : (op == 0x24u) ? ia > ib : ia >= ib;
                r = t ? 1u : 0u;
                flags = flags_sub(a, b);
            }
            else if (op == 0x30u) { r = a & b; flags = flags_logic(r); }
            else if (op == 0x31u) { r = a | b; flags = flags_logic(r); }
            else if (op == 0x32u) { r = a ^ b; flags = flags_logic(r); }
            else if (op == 0x34u) { r = a << (b & 31u); flags = flags_logic(r); }
            else if (op == 0x35u) { r = uint(int(a) >> int(b & 31u)); flags = flags_logic(r); }
            else {
                r = float_op(op, a, b);
            }
            if (trap == 0u && why == 0u) {
                sp -= 1u;
                stack[sp - 1u] = r;
            }
        }
    } else if (op >= 0x15u && op <= 0x17u || op == 0x33u) {
        if (sp < 1u) {
            trap = T_STACK_UNDERFLOW;
        } else {
            uint a = stack[sp - 1u];
            uint r;
            if (op == 0x15u) { r = 0u - a; flags = flags_sub(0u, a); }
            else if (op == 0x16u) { r = a + 1u; flags = flags_add(a, 1u); }
            else if (op == 0x17u) { r = a - 1u; flags = flags_sub(a, 1u); }
            else { r = ~a; flags = flags_logic(r); }
            stack[sp - 1u] = r;
        }
    } else if (op == 0x40u || op == 0x41u || op == 0x43u || op == 0x44u) {
        // memory: only the window 0..255 lives here
        uint addr = 0u;
        bool ok = true;
        if (op == 0x40u || op == 0x41u) {
            addr = byte_at(pc + 1u) | (byte_at(pc + 2u) << 8u);
            if (op == 0x41u && sp < 1u) { trap = T_STACK_UNDERFLOW; ok = false; }
        } else if (op == 0x43u) {
            if (sp < 1u) { trap = T_STACK_UNDERFLOW; ok = false; }
            else {
                uint i = stack[sp - 1u];
                if (i > 16383u) { trap = T_MEM_OUT_OF_RANGE; ok = false; sp -= 1u; }
                addr = i * 4u;
            }
        } else {
            if (sp < 2u) { trap = T_STACK_UNDERFLOW; ok = false; }
            else {
                uint i = stack[sp - 1u];
                if (i > 16383u) { trap = T_MEM_OUT_OF_RANGE; ok = false; }
                addr = i * 4u;
            }
        }
        if (ok && addr + 4u > MEM_WORDS * 4u) {
            why = WHY_MEMORY;
            ok = false;
        }
        if (ok) {
            uint w0 = addr >> 2u;
            uint sh = (addr & 3u) * 8u;
            if (op == 0x40u || op == 0x43u) {
                uint w = sh == 0u ? mem[w0] : (mem[w0] >> sh) | (mem[w0 + 1u] << (32u - sh));
                if (op == 0x43u) {
                    stack[sp - 1u] = w;
                } else if (sp >= STACK_CAP) {
                    why = WHY_STACK;
                } else {
                    stack[sp] = w;
                    sp += 1u;
                }
            } else {
                uint w = op == 0x41u ? stack[sp - 1u] : stack[sp - 2u];
                sp -= op == 0x41u ? 1u : 2u;
                if (sh == 0u) {
                    mem[w0] = w;
                } else {
                    uint lo_mask = (1u << sh) - 1u;
                    mem[w0] = (mem[w0] & lo_mask) | (w << sh);
                    mem[w0 + 1u] = (mem[w0 + 1u] & ~lo_mask) | (w >> (32u - sh));
                }
            }
        }
    } else if (op >= 0x50u && op <= 0x53u) {
        uint lo = byte_at(pc + 1u);
        uint hi = byte_at(pc + 2u);
        int disp = int((hi << 24u) | (lo << 16u)) >> 16;
        int target = int(next) + disp;
        bool take = true;
        if (op == 0x51u || op == 0x52u) {
            if (sp < 1u) { trap = T_STACK_UNDERFLOW; take = false; }
            else {
                sp -= 1u;
                take = ((flags & 1u) == 1u) == (op == 0x51u);
            }
        }
        if (trap == 0u && take) {
            if (target < 0 || target > int(code_len)) {
                trap = T_BAD_JUMP;
            } else if (op == 0x53u) {
                if (rp >= RET_CAP) {
                    why = WHY_RETURNS;
                } else {
                    returns[rp] = next;
                    rp += 1u;
                    next = uint(target);
                }
            } else {
                next = uint(target);
            }
        }
    } else if (op == 0x54u) {
        if (rp == 0u) { trap = T_CALL_STACK_UNDERFLOW; }
        else { rp -= 1u; next = returns[rp]; }
    } else if (op == 0x55u) {
        uint w = byte_at(pc + 1u) | (byte_at(pc + 2u) << 8u) | (byte_at(pc + 3u) << 16u) | (byte_at(pc + 4u) << 24u);
        if (sp >= STACK_CAP) { why = WHY_STACK; }
        else { stack[sp] = w; sp += 1u; }
    } else if (op == 0x56u) {
        if (sp < 1u) { trap = T_STACK_UNDERFLOW; } else { sp -= 1u; }
    } else if (op >= 0x60u && op <= 0x63u) {
        uint need = op == 0x60u ? 1u : op == 0x63u ? 3u : 2u;
        if (sp < need) { trap = T_STACK_UNDERFLOW; }
        else if (op == 0x60u || op == 0x62u) {
            if (sp >= STACK_CAP) { why = WHY_STACK; }
            else { stack[sp] = stack[sp - need]; sp += 1u; }
        } else if (op == 0x61u) {
            uint t = stack[sp - 1u];
            stack[sp - 1u] = stack[sp - 2u];
            stack[sp - 2u] = t;
        } else {
            uint t = stack[sp - 3u];
            stack[sp - 3u] = stack[sp - 2u];
            stack[sp - 2u] = stack[sp - 1u];
            stack[sp - 1u] = t;
        }
    } else if (op == 0x80u) {
        if (sp >= STACK_CAP) { why = WHY_STACK; }
        else { stack[sp] = conf; sp += 1u; }
    } else if (op == 0x81u || op == 0x82u) {
        if (sp < 1u) { trap = T_STACK_UNDERFLOW; }
        else {
            sp -= 1u;
            int v = int(stack[sp]);
            if (op == 0x81u) {
                conf = uint(clamp(v, 0, 1000));
            } else {
                // flux-core computes trunc(c·v/1000) in 64 bits; c·v can overflow 32.
                // With v = q·1000 + rem (both truncated, same sign as v):
                // trunc(c·v/1000) = c·q + trunc(c·rem/1000), and |c·q| < 2^31.
                int q = v / 1000;
                int rem = v - q * 1000;
                int c = int(conf);
                conf = uint(clamp(c * q + (c * rem) / 1000, 0, 1000));
            }
        }
    } else if (op == 0x90u || op == 0x91u) {
        if (sp < 1u) { trap = T_STACK_UNDERFLOW; }
        else if (chans >= CH_CAP) { why = WHY_CHANNELS; }
        else {
            sp -= 1u;
            chan_ch[chans] = byte_at(pc + 1u);
            chan_val[chans] = stack[sp];
            chan_taken[chans] = 0u;
            chans += 1u;
        }
    } else if (op == 0x92u) {
        if (sp >= STACK_CAP) { why = WHY_STACK; }
        else {
            uint ch = byte_at(pc + 1u);
            uint v = 0u;
            for (uint i = 0u; i < chans; i++) {
                if (chan_taken[i] == 0u && chan_ch[i] == ch) {
                    chan_taken[i] = 1u;
                    v = chan_val[i];
                    break;
                }
            }
            stack[sp] = v;
            sp += 1u;
        }
    }
    if (why != 0u) {
        status = ST_NEEDS_CPU;
        error = why;
        return;
    }
    if (trap != 0u) {
        status = ST_TRAP;
        error = trap;
        fault = pc;
        return;
    }
    pc = next;
}

void main() {
    uint id = gl_GlobalInvocationID.x;
    if (id >= params.job_count) {
        return;
    }
    Job job = jobs[id];
    code_base = job.code_off;
    code_len = job.code_len;
    uint out_base = id * params.result_stride;

    max_steps = params.max_steps;
    sp = 0u;
    rp = 0u;
    flags = 0u;
    conf = 1000u;
    pc = 0u;
    steps = 0u;
    status = ST_END;
    error = 0u;
    fault = 0u;
    chans = 0u;
    done = false;
    for (uint i = 0u; i < MEM_WORDS; i++) {
        mem[i] = 0u;
    }
    if (job.init_len > STACK_CAP) {
        status = ST_NEEDS_CPU;
        error = WHY_STACK;
    } else {
        for (uint i = 0u; i < job.init_len; i++) {
            stack[i] = init[job.init_off + i];
        }
        sp = job.init_len;
    }

    // A bounded loop: lavapipe silently ends the loops of a whole SIMD group after
    // ~32 000 iterations in total (its loop limiter), and bounded work per dispatch keeps
    // a runaway program from tripping a GPU watchdog. A job still running after
    // `step_budget` steps goes to the CPU. (So the interpreter has no other loops
    // except the channel search, and the float routines are straight-line code.)
    for (uint n = 0u; n <= params.step_budget && status == ST_END && !done; n++) {
        step_once();
    }
    if (status == ST_END && !done) {
        status = ST_NEEDS_CPU;
        error = WHY_BUDGET;
    }

    uint out_len = status == ST_TRAP ? 0u : sp;
    if (status != ST_NEEDS_CPU && out_len > params.out_stack) {
        status = ST_NEEDS_CPU;
        error = WHY_RESULT;
        out_len = 0u;
    }
    results[out_base + 0u] = status;
    results[out_base + 1u] = error;
    results[out_base + 2u] = fault;
    results[out_base + 3u] = steps;
    results[out_base + 4u] = flags;
    results[out_base + 5u] = conf;
    results[out_base + 6u] = status == ST_NEEDS_CPU ? 0u : out_len;
    results[out_base + 7u] = pc;
    for (uint i = 0u; i < out_len && status != ST_NEEDS_CPU; i++) {
        results[out_base + RESULT_HEADER + i] = stack[i];
    }
}
