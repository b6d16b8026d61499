// The FLUX stack profile (FLUX.md §2–§10) as a compute shader. It must agree with
// flux-core bit for bit, so every rule below mirrors plugins/flux-core/src/{machine,
// stack}.rs. Where this GPU version has smaller limits than the spec (stack, return
// stack, memory window, channel queue, steps per dispatch) or does not implement (the
// escape prefix), it stops with status NEEDS_CPU and a reason, and the host reruns that
// job on flux-core.
//
// How the work is spread. A GPU runs invocations in lockstep groups (a warp of 32 on
// NVIDIA, 8 lanes on lavapipe) that last as long as their busiest member, and evolve-
// style batches are lopsided: most programs stop after a few dozen steps, a few loop
// for a thousand. With one job per invocation, a group of 32 spent most of its time
// waiting on its one long job (a simulation of the benchmark's batch: 20 % of the lanes'
// steps did work). So each invocation is a *lane* that takes jobs one after another from
// a shared counter (`next_job`) until the batch is done: a lane whose job ended takes the
// next while its neighbours still run theirs.
//
// A lane loops once per iteration of a single loop (`main`), never in nested loops:
// lavapipe silently ends the loops of a SIMD group after a fixed number of iterations in
// total (its loop limiter), so the host gives each lane at most `lane_iterations`
// iterations (below that limit on a CPU device), and a lane takes a job only when the
// job is sure to finish within what it has left (`job_bound`): no job is ever cut short,
// so which lane ran a job never changes its result. Copying an initial stack in and a
// result out takes COPY_WORDS words per iteration; the channel search and the float
// routines are straight-line code.

// A quarter of flux-core's 4 096: deep enough that the benchmark's programs, which push
// in loops, end on the GPU (at 256 words, 0.6 % of them went back to flux-core and
// took 60 % of the host's time decoding), and 4 KiB of private memory a lane.
const STACK_CAP: u32 = 1024u;
const RET_CAP: u32 = 16u;
const MEM_WORDS: u32 = 64u;      // bytes 0..255 of the 64 KiB memory
const CH_CAP: u32 = 16u;
const RESULT_HEADER: u32 = 8u;
const COPY_WORDS: u32 = 8u;

// statuses (RESULT word 0)
const ST_HALTED: u32 = 0u;
const ST_BREAK: u32 = 1u;
const ST_END: u32 = 2u;
const ST_TRAP: u32 = 3u;
const ST_NEEDS_CPU: u32 = 255u;

// reasons for NEEDS_CPU (RESULT word 1)
const WHY_STACK: u32 = 1u;
const WHY_RETURNS: u32 = 2u;
const WHY_MEMORY: u32 = 3u;
const WHY_CHANNELS: u32 = 4u;
const WHY_ESCAPE: u32 = 5u;
const WHY_BUDGET: u32 = 7u;
const WHY_RESULT: u32 = 9u;

// traps (FLUX.md §10)
const T_STACK_UNDERFLOW: u32 = 1u;
const T_CALL_STACK_UNDERFLOW: u32 = 3u;
const T_DIV_ZERO: u32 = 5u;
const T_INVALID_OPCODE: u32 = 6u;
const T_TRUNCATED: u32 = 7u;
const T_BAD_JUMP: u32 = 8u;
const T_MEM_OUT_OF_RANGE: u32 = 9u;
const T_STEP_LIMIT: u32 = 12u;

const CANONICAL_NAN: u32 = 0x7FC00000u;

// what a lane is doing
const PH_FETCH: u32 = 0u;
const PH_LOAD: u32 = 1u;
const PH_RUN: u32 = 2u;
const PH_STORE: u32 = 3u;

struct Job {
    code_off: u32,   // byte offset into `code`
    code_len: u32,
    init_off: u32,   // word offset into `init_words`
    init_len: u32,
}

struct Params {
    job_count: u32,
    result_stride: u32,
    step_budget: u32,
    max_steps: u32,
    out_stack: u32,
    lane_iterations: u32,
    job_bound: u32,
    // Written into every result record (word 7): the host takes only records of this
    // dispatch, never a stale one left in the reused buffer.
    epoch: u32,
}

@group(0) @binding(0) var<storage, read> code: array<u32>;
@group(0) @binding(1) var<storage, read> job_list: array<Job>;
@group(0) @binding(2) var<storage, read> init_words: array<u32>;
@group(0) @binding(3) var<storage, read_write> results: array<u32>;
@group(0) @binding(4) var<storage, read_write> next_job: atomic<u32>;
var<immediate> params: Params;

var<private> stack: array<u32, 1024>;
var<private> returns: array<u32, 16>;
var<private> mem: array<u32, 64>;
// Which words of `mem` this job has written (bit i of lo: word i; of hi: word 32 + i):
// the others read as 0, so a new job starts with clear memory without 64 stores.
var<private> mem_set_lo: u32;
var<private> mem_set_hi: u32;
var<private> chan_ch: array<u32, 16>;
var<private> chan_val: array<u32, 16>;
var<private> chan_taken: u32;    // bit i: message i has been listened to

// The machine (one job at a time per lane).
var<private> code_base: u32;
var<private> code_len: u32;
var<private> sp: u32;
var<private> rp: u32;
var<private> flags: u32;
var<private> conf: u32;
var<private> pc: u32;
var<private> steps: u32;
var<private> status: u32;
var<private> error: u32;
var<private> fault: u32;
var<private> chans: u32;
var<private> done: bool;

fn code_byte(i: u32) -> u32 {
    return (code[i >> 2u] >> ((i & 3u) * 8u)) & 0xFFu;
}

// The `n` (1 to 4) bytes of code from byte `i`, little-endian, read a word at a time (the
// bytes above them are junk). The second word is read only when the bytes reach into it,
// so nothing past the program is read.
fn code_bytes(i: u32, n: u32) -> u32 {
    let s = (i & 3u) * 8u;
    var w = code[i >> 2u] >> s;
    if (s != 0u && (i & 3u) + n > 4u) {
        w |= code[(i >> 2u) + 1u] << (32u - s);
    }
    return w;
}

fn mem_get(w: u32) -> u32 {
    let written = select(mem_set_hi, mem_set_lo, w < 32u);
    return select(0u, mem[w], ((written >> (w & 31u)) & 1u) == 1u);
}

fn mem_put(w: u32, v: u32) {
    mem[w] = v;
    if (w < 32u) {
        mem_set_lo |= 1u << w;
    } else {
        mem_set_hi |= 1u << (w - 32u);
    }
}

fn flags_of(z: bool, s: bool, c: bool, o: bool) -> u32 {
    return select(0u, 1u, z) | select(0u, 2u, s) | select(0u, 4u, c) | select(0u, 8u, o);
}

fn flags_add(a: u32, b: u32) -> u32 {
    let r = a + b;
    let carry = r < a;
    let overflow = ((a ^ r) & (b ^ r) & 0x80000000u) != 0u;
    return flags_of(r == 0u, (r >> 31u) == 1u, carry, overflow);
}

fn flags_sub(a: u32, b: u32) -> u32 {
    let r = a - b;
    let overflow = ((a ^ b) & (a ^ r) & 0x80000000u) != 0u;
    return flags_of(r == 0u, (r >> 31u) == 1u, a < b, overflow);
}

fn flags_logic(r: u32) -> u32 {
    return flags_of(r == 0u, (r >> 31u) == 1u, false, false);
}

// ---- binary32 arithmetic in integers -------------------------------------------
// Vulkan only promises correctly rounded add/sub/mul for normal numbers, may flush
// denormals, and need not keep NaN or infinities; its division is 2.5 ulp. FLUX wants
// IEEE 754 round-to-nearest-even everywhere (flux-core uses the CPU's), so every
// F-op is done here with integer operations: the same bits on every device.

fn mul_hi_unsigned(a: u32, b: u32) -> u32 {
    let a_lo = a & 0xFFFFu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xFFFFu;
    let b_hi = b >> 16u;
    let lo_lo = a_lo * b_lo;
    let hi_lo = a_hi * b_lo;
    let lo_hi = a_lo * b_hi;
    let cross = (lo_lo >> 16u) + (hi_lo & 0xFFFFu) + lo_hi;
    return a_hi * b_hi + (hi_lo >> 16u) + (cross >> 16u);
}

// High 32 bits of the signed 64-bit product (for MUL's overflow flags).
fn mul_hi_signed(a: u32, b: u32) -> u32 {
    var hi = mul_hi_unsigned(a, b);
    if ((a >> 31u) == 1u) { hi -= b; }
    if ((b >> 31u) == 1u) { hi -= a; }
    return hi;
}

fn is_nan(x: u32) -> bool {
    return (x & 0x7F800000u) == 0x7F800000u && (x & 0x007FFFFFu) != 0u;
}

fn is_special(x: u32) -> bool {
    return (x & 0x7F800000u) == 0x7F800000u;
}

// The index of the highest set bit of a non-zero x (GLSL's findMSB).
fn msb(x: u32) -> i32 {
    return i32(firstLeadingBit(x));
}

// Shift right by n keeping every bit shifted out as a sticky bit 0.
fn shift_sticky(m: u32, n: u32) -> u32 {
    if (n == 0u) { return m; }
    if (n >= 32u) { return select(0u, 1u, m != 0u); }
    let lost = m & ((1u << n) - 1u);
    return (m >> n) | select(0u, 1u, lost != 0u);
}

// Round a significand carrying 3 extra bits (guard, round, sticky) to nearest-even and
// pack it. m < 2^27; e is the biased exponent for m's bit 26 (e ≥ 1; with e == 1 and
// bit 26 clear the result is denormal).
fn round_pack(s: u32, e_in: i32, m_in: u32) -> u32 {
    var e = e_in;
    var m = m_in;
    let low = m & 7u;
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
    return (s << 31u) | ((u32(e - 1) << 23u) + m);
}

// A finite value unpacked: significand with its implicit bit, exponent (denormals: 1).
struct Unpacked {
    m: u32,
    e: i32,
}

fn unpack(x: u32) -> Unpacked {
    var e = i32((x >> 23u) & 0xFFu);
    var m = x & 0x7FFFFFu;
    if (e == 0) {
        e = 1;
    } else {
        m |= 0x800000u;
    }
    return Unpacked(m, e);
}

fn fadd(a: u32, b: u32) -> u32 {
    var sa = a >> 31u;
    var sb = b >> 31u;
    let ua = unpack(a);
    let ub = unpack(b);
    var ma = ua.m;
    var ea = ua.e;
    var mb = ub.m;
    var eb = ub.e;
    if (ma == 0u && mb == 0u) {
        return (sa & sb) << 31u; // +0 unless both are -0
    }
    if (eb > ea || (eb == ea && mb > ma)) {
        let t = ma; ma = mb; mb = t;
        let te = ea; ea = eb; eb = te;
        let ts = sa; sa = sb; sb = ts;
    }
    var m = ma << 3u;
    let n = shift_sticky(mb << 3u, u32(ea - eb));
    var e = ea;
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
        let up = min(26 - msb(m), e - 1);
        if (up > 0) {
            m <<= u32(up);
            e -= up;
        }
    }
    return round_pack(sa, e, m);
}

fn fmul(a: u32, b: u32) -> u32 {
    let s = (a ^ b) >> 31u;
    let ua = unpack(a);
    let ub = unpack(b);
    var ma = ua.m;
    var ea = ua.e;
    var mb = ub.m;
    var eb = ub.e;
    if (ma == 0u || mb == 0u) {
        return s << 31u;
    }
    let za = 23 - msb(ma);
    let zb = 23 - msb(mb);
    ma <<= u32(za);
    mb <<= u32(zb);
    ea -= za;
    eb -= zb;
    var e = ea + eb - 127;
    // P = ma·mb in [2^46, 2^48) as hi:lo; keep 24 bits + 3 extra, the rest as sticky.
    let lo = ma * mb;
    let hi = mul_hi_unsigned(ma, mb);
    var k = 20u;
    if (hi >= 0x8000u) {
        k = 21u;
        e += 1;
    }
    var m = (hi << (32u - k)) | (lo >> k);
    if ((lo & ((1u << k) - 1u)) != 0u) {
        m |= 1u;
    }
    if (e < 1) {
        m = shift_sticky(m, u32(1 - e));
        e = 1;
    }
    return round_pack(s, e, m);
}

// FADD/FSUB/FMUL with an infinite or NaN operand (IEEE 754 rules, canonical NaN).
fn special(op: u32, a: u32, b_in: u32) -> u32 {
    var b = b_in;
    if (is_nan(a) || is_nan(b)) {
        return CANONICAL_NAN;
    }
    if (op == 0x71u) {
        b ^= 0x80000000u; // a - b = a + (-b)
    }
    let a_inf = is_special(a);
    let b_inf = is_special(b);
    if (op == 0x72u) {
        let a_zero = (a & 0x7FFFFFFFu) == 0u;
        let b_zero = (b & 0x7FFFFFFFu) == 0u;
        if (a_zero || b_zero) {
            return CANONICAL_NAN; // 0 · ∞
        }
        return ((a ^ b) & 0x80000000u) | 0x7F800000u;
    }
    if (a_inf && b_inf) {
        return select(CANONICAL_NAN, a, a == b); // ∞ − ∞
    }
    return select(b, a, a_inf);
}

// A quotient and its remainder.
struct QuoRem {
    q: u32,
    r: u32,
}

// floor(x·2^14 / d) and its remainder, exactly, for 2^23 ≤ d < 2^24 and x < 2·d (so
// the quotient is below 2^15). A float division estimates it — within one of the true
// quotient, as Vulkan holds f32 division to 2.5 ulp and the quotient is below 2^15 —
// and the integer remainder corrects the estimate; the remainder of an estimate that
// far off is below 2^26 in size, so its low 32 bits (wrapping arithmetic) are all of
// it. Integer division costs a GPU (and lavapipe) far more: the long division this
// replaced, seven bits at a time, was a sixth of the interpreter's time.
fn div_step(x: u32, d: u32) -> QuoRem {
    var q = u32(floor(f32(x) * 16384.0 / f32(d)));
    var r = bitcast<i32>((x << 14u) - q * d);
    // Two corrections each way, written out (no loop; see the top of the file): one
    // would do for a conforming driver.
    if (r < 0) { q -= 1u; r += i32(d); }
    if (r < 0) { q -= 1u; r += i32(d); }
    if (r >= i32(d)) { q += 1u; r -= i32(d); }
    if (r >= i32(d)) { q += 1u; r -= i32(d); }
    return QuoRem(q, u32(r));
}

// Exactly rounded division by integer long division (denormals included).
fn fdiv(a: u32, b: u32) -> u32 {
    let sign = (a ^ b) & 0x80000000u;
    let ea = (a >> 23u) & 0xFFu;
    let eb = (b >> 23u) & 0xFFu;
    var ma = a & 0x7FFFFFu;
    var mb = b & 0x7FFFFFu;
    let a_nan = ea == 255u && ma != 0u;
    let b_nan = eb == 255u && mb != 0u;
    let a_inf = ea == 255u && ma == 0u;
    let b_inf = eb == 255u && mb == 0u;
    let a_zero = ea == 0u && ma == 0u;
    let b_zero = eb == 0u && mb == 0u;
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
    var e = i32(ea) - i32(eb) + 127;
    if (ea == 0u) {
        let z = 23 - msb(ma);
        ma <<= u32(z);
        e += 1 - z;
    } else {
        ma |= 0x800000u;
    }
    if (eb == 0u) {
        let z = 23 - msb(mb);
        mb <<= u32(z);
        e -= 1 - z;
    } else {
        mb |= 0x800000u;
    }
    if (ma < mb) {
        ma <<= 1u;
        e -= 1;
    }
    // ma/mb in [1, 2). q = floor(ma·2^28 / mb) has 29 bits; keep 25 (24 + a guard bit),
    // the rest and the remainder are sticky. Found 14 bits at a time (see div_step):
    // ma·2^28 = (q1·mb + r1)·2^14 = (q1·2^14 + q2)·mb + r2.
    let hi = div_step(ma, mb);
    let lo = div_step(hi.r, mb);
    var q = (hi.q << 14u) | lo.q;
    let r = lo.r;
    var sticky = r != 0u || (q & 15u) != 0u;
    q >>= 4u;
    if (e <= 0) {
        // A denormal result: shift right, keeping what falls off as sticky, round once.
        let shift = u32(1 - e);
        if (shift >= 26u) {
            sticky = sticky || q != 0u;
            q = 0u;
        } else {
            sticky = sticky || (q & ((1u << shift) - 1u)) != 0u;
            q >>= shift;
        }
        let g = q & 1u;
        q >>= 1u;
        if (g == 1u && (sticky || (q & 1u) == 1u)) {
            q += 1u;
        }
        // Rounding up into the smallest normal carries into the exponent field by itself.
        return sign | q;
    }
    let guard = q & 1u;
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
    return sign | (u32(e) << 23u) | (q & 0x7FFFFFu);
}

fn float_op(op: u32, a: u32, b: u32) -> u32 {
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

// ---- channels ---------------------------------------------------------------------

fn chan_hit(i: u32, ch: u32) -> u32 {
    return select(0u, 1u << i, chan_ch[i] == ch);
}

// LISTEN: the oldest message on `ch` not yet taken, or 0. Sixteen comparisons written
// out rather than a loop (see the top of the file).
fn listen(ch: u32) -> u32 {
    var hits = chan_hit(0u, ch) | chan_hit(1u, ch) | chan_hit(2u, ch) | chan_hit(3u, ch);
    hits |= chan_hit(4u, ch) | chan_hit(5u, ch) | chan_hit(6u, ch) | chan_hit(7u, ch);
    hits |= chan_hit(8u, ch) | chan_hit(9u, ch) | chan_hit(10u, ch) | chan_hit(11u, ch);
    hits |= chan_hit(12u, ch) | chan_hit(13u, ch) | chan_hit(14u, ch) | chan_hit(15u, ch);
    // Only the messages this job queued (chans ≤ 16), and only those not yet taken.
    hits &= ((1u << chans) - 1u) & ~chan_taken;
    if (hits == 0u) {
        return 0u;
    }
    let i = firstTrailingBit(hits);
    chan_taken |= 1u << i;
    return chan_val[i];
}

// ---- one instruction --------------------------------------------------------------

fn step_once() {
    if (pc >= code_len) {
        done = true;
        return;
    }
    if (steps >= params.max_steps) {
        status = ST_TRAP;
        error = T_STEP_LIMIT;
        fault = pc;
        return;
    }
    steps += 1u;
    let op = code_byte(code_base + pc);
    var len = 1u;
    if (op == 0x40u || op == 0x41u || (op >= 0x50u && op <= 0x53u)) {
        len = 3u;
    } else if (op == 0x55u) {
        len = 5u;
    } else if (op >= 0x90u && op <= 0x92u) {
        len = 2u;
    }
    var next = pc + len;
    var trap = 0u;
    var why = 0u;
    // The operand bytes, fetched once for every instruction that has them.
    var imm = 0u;
    if (next > code_len) {
        // Only instructions longer than a byte get here, and all of those are known: an
        // unknown opcode (or the escape prefix) is one byte and traps as such below.
        trap = T_TRUNCATED;
    } else if (len > 1u) {
        imm = code_bytes(code_base + pc + 1u, len - 1u);
    }
    if (trap != 0u) {
    } else if (op == 0x00u) {
        status = ST_HALTED;
    } else if (op == 0x01u) {
    } else if (op == 0x02u) {
        status = ST_BREAK;
    } else if ((op >= 0x10u && op <= 0x14u) || (op >= 0x20u && op <= 0x25u)
               || (op >= 0x30u && op <= 0x32u) || op == 0x34u || op == 0x35u
               || (op >= 0x70u && op <= 0x73u)) {
        // binary ( a b -- r )
        if (sp < 2u) {
            trap = T_STACK_UNDERFLOW;
        } else {
            let a = stack[sp - 2u];
            let b = stack[sp - 1u];
            var r = 0u;
            if (op == 0x10u) { r = a + b; flags = flags_add(a, b); }
            else if (op == 0x11u) { r = a - b; flags = flags_sub(a, b); }
            else if (op == 0x12u) {
                r = a * b;
                let hi = mul_hi_signed(a, b);
                let lost = hi != select(0u, 0xFFFFFFFFu, (r >> 31u) == 1u);
                flags = flags_of(r == 0u, (r >> 31u) == 1u, lost, lost);
            }
            else if (op == 0x13u || op == 0x14u) {
                if (b == 0u) {
                    trap = T_DIV_ZERO;
                } else {
                    let ia = i32(a);
                    let ib = i32(b);
                    let ovf = a == 0x80000000u && b == 0xFFFFFFFFu;
                    // (WGSL defines MIN / -1 as MIN and MIN % -1 as 0, as FLUX does.)
                    if (op == 0x13u) {
                        r = select(u32(ia / ib), a, ovf);
                    } else {
                        r = select(u32(ia % ib), 0u, ovf);
                    }
                    flags = flags_of(r == 0u, (r >> 31u) == 1u, false, ovf && op == 0x13u);
                }
            }
            else if (op >= 0x20u && op <= 0x25u) {
                let ia = i32(a);
                let ib = i32(b);
                var t = ia >= ib;
                if (op == 0x20u) { t = ia == ib; }
                else if (op == 0x21u) { t = ia != ib; }
                else if (op == 0x22u) { t = ia < ib; }
                else if (op == 0x23u) { t = ia <= ib; }
                else if (op == 0x24u) { t = ia > ib; }
                r = select(0u, 1u, t);
                flags = flags_sub(a, b);
            }
            else if (op == 0x30u) { r = a & b; flags = flags_logic(r); }
            else if (op == 0x31u) { r = a | b; flags = flags_logic(r); }
            else if (op == 0x32u) { r = a ^ b; flags = flags_logic(r); }
            else if (op == 0x34u) { r = a << (b & 31u); flags = flags_logic(r); }
            else if (op == 0x35u) { r = u32(i32(a) >> (b & 31u)); flags = flags_logic(r); }
            else {
                r = float_op(op, a, b);
            }
            if (trap == 0u) {
                sp -= 1u;
                stack[sp - 1u] = r;
            }
        }
    } else if ((op >= 0x15u && op <= 0x17u) || op == 0x33u) {
        if (sp < 1u) {
            trap = T_STACK_UNDERFLOW;
        } else {
            let a = stack[sp - 1u];
            var r = ~a;
            if (op == 0x15u) { r = 0u - a; flags = flags_sub(0u, a); }
            else if (op == 0x16u) { r = a + 1u; flags = flags_add(a, 1u); }
            else if (op == 0x17u) { r = a - 1u; flags = flags_sub(a, 1u); }
            else { flags = flags_logic(r); }
            stack[sp - 1u] = r;
        }
    } else if (op == 0x40u || op == 0x41u || op == 0x43u || op == 0x44u) {
        // memory: only the window 0..255 lives here
        var addr = 0u;
        var ok = true;
        if (op == 0x40u || op == 0x41u) {
            addr = imm & 0xFFFFu;
            if (op == 0x41u && sp < 1u) { trap = T_STACK_UNDERFLOW; ok = false; }
        } else if (op == 0x43u) {
            if (sp < 1u) { trap = T_STACK_UNDERFLOW; ok = false; }
            else {
                let i = stack[sp - 1u];
                if (i > 16383u) { trap = T_MEM_OUT_OF_RANGE; ok = false; sp -= 1u; }
                addr = i * 4u;
            }
        } else {
            if (sp < 2u) { trap = T_STACK_UNDERFLOW; ok = false; }
            else {
                let i = stack[sp - 1u];
                if (i > 16383u) { trap = T_MEM_OUT_OF_RANGE; ok = false; }
                addr = i * 4u;
            }
        }
        if (ok && addr + 4u > MEM_WORDS * 4u) {
            why = WHY_MEMORY;
            ok = false;
        }
        if (ok) {
            let w0 = addr >> 2u;
            let sh = (addr & 3u) * 8u;
            if (op == 0x40u || op == 0x43u) {
                var w = mem_get(w0);
                if (sh != 0u) {
                    w = (w >> sh) | (mem_get(w0 + 1u) << (32u - sh));
                }
                if (op == 0x43u) {
                    stack[sp - 1u] = w;
                } else if (sp >= STACK_CAP) {
                    why = WHY_STACK;
                } else {
                    stack[sp] = w;
                    sp += 1u;
                }
            } else {
                var w = 0u;
                if (op == 0x41u) {
                    w = stack[sp - 1u];
                    sp -= 1u;
                } else {
                    w = stack[sp - 2u];
                    sp -= 2u;
                }
                if (sh == 0u) {
                    mem_put(w0, w);
                } else {
                    let lo_mask = (1u << sh) - 1u;
                    mem_put(w0, (mem_get(w0) & lo_mask) | (w << sh));
                    mem_put(w0 + 1u, (mem_get(w0 + 1u) & ~lo_mask) | (w >> (32u - sh)));
                }
            }
        }
    } else if (op >= 0x50u && op <= 0x53u) {
        let disp = bitcast<i32>(imm << 16u) >> 16u;
        let dest = i32(next) + disp;
        var take = true;
        if (op == 0x51u || op == 0x52u) {
            if (sp < 1u) { trap = T_STACK_UNDERFLOW; take = false; }
            else {
                sp -= 1u;
                take = ((flags & 1u) == 1u) == (op == 0x51u);
            }
        }
        if (trap == 0u && take) {
            if (dest < 0 || dest > i32(code_len)) {
                trap = T_BAD_JUMP;
            } else if (op == 0x53u) {
                if (rp >= RET_CAP) {
                    why = WHY_RETURNS;
                } else {
                    returns[rp] = next;
                    rp += 1u;
                    next = u32(dest);
                }
            } else {
                next = u32(dest);
            }
        }
    } else if (op == 0x54u) {
        if (rp == 0u) { trap = T_CALL_STACK_UNDERFLOW; }
        else { rp -= 1u; next = returns[rp]; }
    } else if (op == 0x55u) {
        if (sp >= STACK_CAP) { why = WHY_STACK; }
        else { stack[sp] = imm; sp += 1u; }
    } else if (op == 0x56u) {
        if (sp < 1u) { trap = T_STACK_UNDERFLOW; } else { sp -= 1u; }
    } else if (op >= 0x60u && op <= 0x63u) {
        var need = 2u;
        if (op == 0x60u) { need = 1u; } else if (op == 0x63u) { need = 3u; }
        if (sp < need) { trap = T_STACK_UNDERFLOW; }
        else if (op == 0x60u || op == 0x62u) {
            if (sp >= STACK_CAP) { why = WHY_STACK; }
            else { stack[sp] = stack[sp - need]; sp += 1u; }
        } else if (op == 0x61u) {
            let t = stack[sp - 1u];
            stack[sp - 1u] = stack[sp - 2u];
            stack[sp - 2u] = t;
        } else {
            let t = stack[sp - 3u];
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
            let v = i32(stack[sp]);
            if (op == 0x81u) {
                conf = u32(clamp(v, 0, 1000));
            } else {
                // flux-core computes trunc(c·v/1000) in 64 bits; c·v can overflow 32.
                // With v = q·1000 + rem (both truncated, same sign as v):
                // trunc(c·v/1000) = c·q + trunc(c·rem/1000), and |c·q| < 2^31.
                let q = v / 1000;
                let rem = v - q * 1000;
                let c = i32(conf);
                conf = u32(clamp(c * q + (c * rem) / 1000, 0, 1000));
            }
        }
    } else if (op == 0x90u || op == 0x91u) {
        if (sp < 1u) { trap = T_STACK_UNDERFLOW; }
        else if (chans >= CH_CAP) { why = WHY_CHANNELS; }
        else {
            sp -= 1u;
            chan_ch[chans] = imm & 0xFFu;
            chan_val[chans] = stack[sp];
            chan_taken &= ~(1u << chans);
            chans += 1u;
        }
    } else if (op == 0x92u) {
        if (sp >= STACK_CAP) { why = WHY_STACK; }
        else {
            stack[sp] = listen(imm & 0xFFu);
            sp += 1u;
        }
    } else if (op == 0xFFu) {
        why = WHY_ESCAPE;
    } else {
        trap = T_INVALID_OPCODE;
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

// ---- a lane -----------------------------------------------------------------------

@compute @workgroup_size(64)
fn main() {
    var phase = PH_FETCH;
    var record = 0u;     // the job this lane runs: its index and its result record
    var init_off = 0u;
    var init_len = 0u;
    var copied = 0u;     // words of the initial stack copied in, or of the result out
    var run_n = 0u;      // steps taken in this dispatch
    var out_len = 0u;
    for (var it = 0u; it < params.lane_iterations; it++) {
        if (phase == PH_FETCH) {
            // A job taken here finishes within job_bound iterations, whatever it does.
            if (params.lane_iterations - it < params.job_bound) {
                break;
            }
            record = atomicAdd(&next_job, 1u);
            if (record >= params.job_count) {
                break;
            }
            let job = job_list[record];
            code_base = job.code_off;
            code_len = job.code_len;
            init_off = job.init_off;
            init_len = job.init_len;
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
            chan_taken = 0u;
            mem_set_lo = 0u;
            mem_set_hi = 0u;
            done = false;
            run_n = 0u;
            copied = 0u;
            out_len = 0u;
            if (init_len > STACK_CAP) {
                status = ST_NEEDS_CPU;
                error = WHY_STACK;
                phase = PH_STORE;
            } else {
                phase = PH_LOAD;
            }
        }
        if (phase == PH_LOAD) {
            copy_words_in(copied, init_off, init_len);
            copied += COPY_WORDS;
            if (copied >= init_len) {
                sp = init_len;
                phase = PH_RUN;
            }
        } else if (phase == PH_RUN) {
            step_once();
            run_n += 1u;
            if (status == ST_END && !done && run_n > params.step_budget) {
                // Still running after its budget for one dispatch: flux-core finishes it.
                status = ST_NEEDS_CPU;
                error = WHY_BUDGET;
            }
            if (status != ST_END || done) {
                out_len = select(sp, 0u, status == ST_TRAP);
                if (status != ST_NEEDS_CPU && out_len > params.out_stack) {
                    status = ST_NEEDS_CPU;
                    error = WHY_RESULT;
                }
                if (status == ST_NEEDS_CPU) {
                    out_len = 0u;
                }
                copied = 0u;
                phase = PH_STORE;
            }
        }
        if (phase == PH_STORE) {
            let base = record * params.result_stride;
            if (copied == 0u) {
                results[base + 0u] = status;
                results[base + 1u] = error;
                results[base + 2u] = fault;
                results[base + 3u] = steps;
                results[base + 4u] = flags;
                results[base + 5u] = conf;
                results[base + 6u] = out_len;
                results[base + 7u] = params.epoch;
            }
            copy_words_out(copied, base + RESULT_HEADER, out_len);
            copied += COPY_WORDS;
            if (copied >= out_len) {
                phase = PH_FETCH;
            }
        }
    }
}

// COPY_WORDS (8) words of the initial stack from word `first`, those below `len`,
// written out rather than looped (see the top of the file).
fn copy_words_in(first: u32, off: u32, len: u32) {
    copy_in(first + 0u, off, len);
    copy_in(first + 1u, off, len);
    copy_in(first + 2u, off, len);
    copy_in(first + 3u, off, len);
    copy_in(first + 4u, off, len);
    copy_in(first + 5u, off, len);
    copy_in(first + 6u, off, len);
    copy_in(first + 7u, off, len);
}

fn copy_in(i: u32, off: u32, len: u32) {
    if (i < len) {
        stack[i] = init_words[off + i];
    }
}

// COPY_WORDS (8) words of the final stack from word `first` into the result record.
fn copy_words_out(first: u32, base: u32, len: u32) {
    copy_out(first + 0u, base, len);
    copy_out(first + 1u, base, len);
    copy_out(first + 2u, base, len);
    copy_out(first + 3u, base, len);
    copy_out(first + 4u, base, len);
    copy_out(first + 5u, base, len);
    copy_out(first + 6u, base, len);
    copy_out(first + 7u, base, len);
}

fn copy_out(i: u32, base: u32, len: u32) {
    if (i < len) {
        results[base + i] = stack[i];
    }
}
