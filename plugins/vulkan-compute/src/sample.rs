//! Deterministic batches of short, evolve-sized FLUX programs for benchmarks and the
//! real-GPU check (the property tests use proptest's generator instead).

/// A small xorshift generator: the same seed gives the same programs on every machine,
/// so GPU and CPU runs of a benchmark evaluate identical work.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

/// Opcodes a candidate is built from: arithmetic, comparisons, logic, stack shuffles,
/// floats, confidence — the stack profile's everyday instructions.
const ONE_BYTE: &[u8] = &[
    0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x20, 0x22, 0x24, 0x30, 0x31, 0x32, 0x33, 0x34,
    0x35, 0x56, 0x60, 0x61, 0x62, 0x63, 0x70, 0x71, 0x72, 0x73, 0x80, 0x82,
];

/// One program of 8–40 instructions; about one in four has a counted loop.
pub fn program(rng: &mut Rng) -> Vec<u8> {
    let mut code = Vec::new();
    let body = 8 + rng.below(33) as usize;
    let looped = rng.below(4) == 0;
    if looped {
        // push N; loop: … ; dec; jnz loop  (the body keeps the counter on top)
        code.push(0x55);
        code.extend_from_slice(&(2 + rng.below(30) as i32).to_le_bytes());
    }
    let loop_start = code.len();
    for _ in 0..body {
        match rng.below(10) {
            0..=2 => {
                code.push(0x55);
                code.extend_from_slice(&((rng.next_u64() as i32) >> rng.below(31)).to_le_bytes());
            }
            _ => code.push(ONE_BYTE[rng.below(ONE_BYTE.len() as u64) as usize]),
        }
    }
    if looped {
        code.push(0x17); // dec (sets Z at 0)
        code.push(0x60); // dup: jnz consumes a word
        code.push(0x52); // jnz loop_start
        let next = code.len() as i64 + 2;
        let disp = (loop_start as i64 - next) as i16;
        code.extend_from_slice(&disp.to_le_bytes());
    }
    code.push(0x00);
    code
}

/// `n` programs from `seed`.
pub fn programs(n: usize, seed: u64) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(seed);
    (0..n).map(|_| program(&mut rng)).collect()
}
