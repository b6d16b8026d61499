//! The pattern library: each kind of question, its direct answer (computed in Rust,
//! checked against 32-bit FLUX words), and the programs that compute it — a readable
//! stack-profile loop, an independently built register-profile program, and where they
//! exist a closed form and an unrolled straight line (the `--parallel` strategies).
//!
//! Variables of stack programs live in memory words (byte addresses 0, 4, 8, …), which
//! keeps every loop short and readable. Conditional jumps branch on the Z flag (§5), so
//! a value is tested with `push 0 / or` (OR sets Z from it) and a comparison's boolean
//! the same way.

use crate::regasm::{RegAsm, R};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Fibonacci,
    Factorial,
    SumRange,
    SumSquares,
    Gcd,
    Lcm,
    IsPrime,
    CountPrimes,
    Power,
    Collatz,
    DigitSum,
    Isqrt,
    Min,
    Max,
    Average,
}

/// A pattern as the user sees it: its name, an example question, and the words that
/// suggest it (for "did you mean").
pub struct Info {
    pub kind: Kind,
    pub name: &'static str,
    pub example: &'static str,
    pub words: &'static [&'static str],
}

pub const PATTERNS: &[Info] = &[
    Info {
        kind: Kind::Fibonacci,
        name: "fibonacci",
        example: "fibonacci 10 (or: the 10th fibonacci number)",
        words: &["fibonacci", "fib"],
    },
    Info {
        kind: Kind::Factorial,
        name: "factorial",
        example: "factorial of 7 (or: 7!)",
        words: &["factorial"],
    },
    Info {
        kind: Kind::SumRange,
        name: "sum of a range",
        example: "sum the numbers 1 through 100",
        words: &["sum", "add", "total", "range", "through"],
    },
    Info {
        kind: Kind::SumSquares,
        name: "sum of squares",
        example: "sum of squares 1 to 10",
        words: &["squares", "sum", "square"],
    },
    Info {
        kind: Kind::Gcd,
        name: "gcd",
        example: "gcd of 48 and 18",
        words: &["gcd", "greatest", "common", "divisor"],
    },
    Info {
        kind: Kind::Lcm,
        name: "lcm",
        example: "lcm of 4 and 6",
        words: &["lcm", "least", "common", "multiple"],
    },
    Info {
        kind: Kind::IsPrime,
        name: "is prime",
        example: "is 97 prime",
        words: &["prime", "is"],
    },
    Info {
        kind: Kind::CountPrimes,
        name: "count of primes",
        example: "how many primes below 100",
        words: &["primes", "count", "how", "many", "below"],
    },
    Info {
        kind: Kind::Power,
        name: "power",
        example: "2 to the power of 10 (or: 2^10)",
        words: &["power", "pow", "exponent", "raised"],
    },
    Info {
        kind: Kind::Collatz,
        name: "collatz steps",
        example: "collatz steps of 27",
        words: &["collatz", "steps", "hailstone"],
    },
    Info {
        kind: Kind::DigitSum,
        name: "digit sum",
        example: "digit sum of 9875",
        words: &["digit", "digits", "sum"],
    },
    Info {
        kind: Kind::Isqrt,
        name: "integer square root",
        example: "integer square root of 99",
        words: &["square", "root", "sqrt", "isqrt"],
    },
    Info {
        kind: Kind::Min,
        name: "minimum",
        example: "min of 7, 3, 9",
        words: &["min", "minimum", "smallest", "lowest"],
    },
    Info {
        kind: Kind::Max,
        name: "maximum",
        example: "max of 7, 3, 9",
        words: &["max", "maximum", "largest", "biggest", "highest"],
    },
    Info {
        kind: Kind::Average,
        name: "average",
        example: "average of 2, 4, 9",
        words: &["average", "mean", "avg"],
    },
];

pub fn info(kind: Kind) -> &'static Info {
    PATTERNS
        .iter()
        .find(|p| p.kind == kind)
        .unwrap_or(&PATTERNS[0])
}

/// A question the compiler understood.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Question {
    pub kind: Kind,
    pub args: Vec<i64>,
}

const W_MIN: i64 = i32::MIN as i64;
const W_MAX: i64 = i32::MAX as i64;

fn word(v: i64, what: &str) -> Result<i64, String> {
    if (W_MIN..=W_MAX).contains(&v) {
        Ok(v)
    } else {
        Err(format!(
            "{what} is {v}, which does not fit a 32-bit FLUX word"
        ))
    }
}

fn within(v: i64, lo: i64, hi: i64, what: &str) -> Result<(), String> {
    if (lo..=hi).contains(&v) {
        Ok(())
    } else {
        Err(format!("{what} must be between {lo} and {hi} (got {v})"))
    }
}

impl Question {
    pub fn describe(&self) -> String {
        let a = |i: usize| self.args.get(i).copied().unwrap_or(0);
        let list = self
            .args
            .iter()
            .map(i64::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        match self.kind {
            Kind::Fibonacci => format!("fibonacci({})", a(0)),
            Kind::Factorial => format!("factorial({})", a(0)),
            Kind::SumRange => format!("sum({}..={})", a(0), a(1)),
            Kind::SumSquares => format!("sum of squares({}..={})", a(0), a(1)),
            Kind::Gcd => format!("gcd({}, {})", a(0), a(1)),
            Kind::Lcm => format!("lcm({}, {})", a(0), a(1)),
            Kind::IsPrime => format!("is_prime({})", a(0)),
            Kind::CountPrimes => format!("count of primes below {}", a(0)),
            Kind::Power => format!("{}^{}", a(0), a(1)),
            Kind::Collatz => format!("collatz steps({})", a(0)),
            Kind::DigitSum => format!("digit sum({})", a(0)),
            Kind::Isqrt => format!("isqrt({})", a(0)),
            Kind::Min => format!("min({list})"),
            Kind::Max => format!("max({list})"),
            Kind::Average => format!("average({list})"),
        }
    }

    /// Whether the result is a truth value (printed `(true)` / `(false)`).
    pub fn boolean(&self) -> bool {
        self.kind == Kind::IsPrime
    }

    /// The answer, computed directly — what every program must agree with. An input the
    /// programs cannot handle within 32-bit words and a sane step budget is refused here.
    pub fn direct(&self) -> Result<i64, String> {
        let a = |i: usize| self.args.get(i).copied().unwrap_or(0);
        match self.kind {
            Kind::Fibonacci => {
                within(a(0), 0, 46, "n (fibonacci 47 overflows a 32-bit word)")?;
                let (mut x, mut y) = (0i64, 1i64);
                for _ in 0..a(0) {
                    (x, y) = (y, x + y);
                }
                Ok(x)
            }
            Kind::Factorial => {
                within(a(0), 0, 12, "n (13! overflows a 32-bit word)")?;
                Ok((1..=a(0)).product())
            }
            Kind::SumRange | Kind::SumSquares => {
                let (lo, hi) = (a(0), a(1));
                within(lo, -1_000_000, 1_000_000, "the range's start")?;
                within(hi, lo, lo + 1_000_000, "the range's end")?;
                let total: i64 = if self.kind == Kind::SumRange {
                    (lo..=hi).sum()
                } else {
                    (lo..=hi).map(|i| i * i).sum()
                };
                // Every partial sum is a word too, or the loop would wrap on the way.
                let mut partial = 0i64;
                for i in lo..=hi {
                    partial += if self.kind == Kind::SumRange {
                        i
                    } else {
                        i * i
                    };
                    word(partial, "a partial sum")?;
                }
                word(total, "the sum")
            }
            Kind::Gcd => {
                within(a(0), 0, W_MAX, "the first number")?;
                within(a(1), 0, W_MAX, "the second number")?;
                let (mut x, mut y) = (a(0), a(1));
                while y != 0 {
                    (x, y) = (y, x % y);
                }
                Ok(x)
            }
            Kind::Lcm => {
                within(a(0), 1, W_MAX, "the first number")?;
                within(a(1), 1, W_MAX, "the second number")?;
                let (mut x, mut y) = (a(0), a(1));
                while y != 0 {
                    (x, y) = (y, x % y);
                }
                word(a(0) / x * a(1), "the lcm")
            }
            Kind::IsPrime => {
                within(a(0), 0, 2_000_000_000, "n")?;
                Ok(i64::from(is_prime(a(0))))
            }
            Kind::CountPrimes => {
                within(
                    a(0),
                    0,
                    10_000,
                    "n (the trial-division programs stay within their step budget up to 10000)",
                )?;
                Ok((2..a(0)).filter(|k| is_prime(*k)).count() as i64)
            }
            Kind::Power => {
                within(a(0), -65_536, 65_536, "the base")?;
                within(a(1), 0, 62, "the exponent")?;
                let mut r = 1i64;
                for _ in 0..a(1) {
                    r = word(r * a(0), "the power")?;
                }
                Ok(r)
            }
            Kind::Collatz => {
                within(a(0), 1, 1_000_000, "n")?;
                let (mut n, mut steps) = (a(0), 0i64);
                while n != 1 {
                    n = if n % 2 == 0 {
                        n / 2
                    } else {
                        word(3 * n + 1, "a Collatz value")?
                    };
                    steps += 1;
                }
                Ok(steps)
            }
            Kind::DigitSum => {
                within(a(0), 0, W_MAX, "n")?;
                let (mut n, mut s) = (a(0), 0);
                while n > 0 {
                    s += n % 10;
                    n /= 10;
                }
                Ok(s)
            }
            Kind::Isqrt => {
                within(a(0), 0, 2_000_000_000, "n")?;
                let mut r = 0i64;
                while (r + 1) * (r + 1) <= a(0) {
                    r += 1;
                }
                Ok(r)
            }
            Kind::Min | Kind::Max | Kind::Average => {
                if self.args.is_empty() || self.args.len() > 64 {
                    return Err("give 1 to 64 numbers".into());
                }
                for v in &self.args {
                    word(*v, "a number")?;
                }
                Ok(match self.kind {
                    Kind::Min => self.args.iter().copied().min().unwrap_or(0),
                    Kind::Max => self.args.iter().copied().max().unwrap_or(0),
                    _ => {
                        let mut s = 0i64;
                        for v in &self.args {
                            s = word(s + v, "the running total")?;
                        }
                        // FLUX DIV truncates toward zero, as Rust's `/` does.
                        s / self.args.len() as i64
                    }
                })
            }
        }
    }
}

pub fn is_prime(n: i64) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2;
    while d * d <= n {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

/// One way of computing the answer.
#[derive(Debug, Clone)]
pub struct Strategy {
    pub name: &'static str,
    pub why: &'static str,
    pub source: Source,
}

#[derive(Debug, Clone)]
pub enum Source {
    /// Stack-profile assembly (datum syntax, §13.2).
    Stack(String),
    /// Register-profile bytes and their listing.
    Reg(Vec<u8>, String),
}

/// The strategies for a question, the readable stack loop first.
pub fn strategies(q: &Question) -> Result<Vec<Strategy>, String> {
    let mut out = vec![Strategy {
        name: "stack-loop",
        why: "the readable stack program: variables in memory, one loop",
        source: Source::Stack(stack_loop(q)),
    }];
    let (code, listing) = register(q)?;
    out.push(Strategy {
        name: "register",
        why: "an independent register-profile program",
        source: Source::Reg(code, listing),
    });
    if let Some(s) = closed_form(q) {
        out.push(Strategy {
            name: "closed-form",
            why: "a formula, no loop",
            source: Source::Stack(s),
        });
    }
    if let Some(s) = unrolled(q) {
        out.push(Strategy {
            name: "unrolled",
            why: "the loop unrolled into a straight line",
            source: Source::Stack(s),
        });
    }
    Ok(out)
}

fn header(q: &Question, how: &str) -> String {
    format!("; {} — {how}\n", q.describe())
}

/// The readable stack-profile program.
pub fn stack_loop(q: &Question) -> String {
    let a = |i: usize| q.args.get(i).copied().unwrap_or(0);
    let body = match q.kind {
        Kind::Fibonacci => format!(
            "        push 0\n        store 0         ; a = F(0)\n        push 1\n        store 4         ; b = F(1)\n        push {n}\n        store 8         ; i = {n} steps to go\nloop:   load 8\n        push 0\n        or              ; Z = (i == 0)\n        jz done\n        load 0\n        load 4\n        dup\n        store 0         ; a = b\n        add\n        store 4         ; b = old a + old b\n        load 8\n        dec\n        store 8\n        jmp loop\ndone:   load 0          ; a = F({n})\n        halt\n",
            n = a(0)
        ),
        Kind::Factorial => format!(
            "        push 1\n        store 0         ; product = 1\n        push {n}\n        store 4         ; k = {n}\nloop:   load 4\n        push 0\n        or              ; Z = (k == 0)\n        jz done\n        load 0\n        load 4\n        mul\n        store 0         ; product *= k\n        load 4\n        dec\n        store 4         ; k -= 1\n        jmp loop\ndone:   load 0\n        halt\n",
            n = a(0)
        ),
        Kind::SumRange | Kind::SumSquares => {
            let term = if q.kind == Kind::SumSquares {
                "        load 4\n        dup\n        mul             ; i * i\n"
            } else {
                "        load 4\n"
            };
            format!(
                "        push 0\n        store 0         ; total = 0\n        push {lo}\n        store 4         ; i = {lo}\nloop:   load 4\n        push {hi}\n        gt              ; i > {hi} ?\n        push 0\n        or\n        jnz done\n        load 0\n{term}        add\n        store 0         ; total += term\n        load 4\n        inc\n        store 4         ; i += 1\n        jmp loop\ndone:   load 0\n        halt\n",
                lo = a(0),
                hi = a(1)
            )
        }
        Kind::Gcd | Kind::Lcm => {
            let mut s = format!(
                "        push {x}\n        store 0         ; a\n        push {y}\n        store 4         ; b\nloop:   load 4\n        push 0\n        or              ; Z = (b == 0)\n        jz done\n        load 0\n        load 4\n        mod             ; a mod b\n        load 4\n        store 0         ; a = b\n        store 4         ; b = a mod b\n        jmp loop\ndone:   load 0          ; gcd\n",
                x = a(0),
                y = a(1)
            );
            if q.kind == Kind::Lcm {
                s.push_str(&format!(
                    "        store 8         ; g = gcd\n        push {x}\n        load 8\n        div             ; {x} / g\n        push {y}\n        mul             ; * {y}\n",
                    x = a(0),
                    y = a(1)
                ));
            }
            s.push_str("        halt\n");
            s
        }
        Kind::IsPrime => format!(
            "        push {n}\n        push 2\n        lt              ; n < 2 ?\n        push 0\n        or\n        jnz no\n        push 2\n        store 0         ; d = 2\nloop:   load 0\n        dup\n        mul             ; d * d\n        push {n}\n        gt              ; d * d > n ?\n        push 0\n        or\n        jnz yes\n        push {n}\n        load 0\n        mod             ; n mod d\n        push 0\n        or\n        jz no           ; divisible: not prime\n        load 0\n        inc\n        store 0\n        jmp loop\nyes:    push 1\n        halt\nno:     push 0\n        halt\n",
            n = a(0)
        ),
        Kind::CountPrimes => format!(
            "        push 0\n        store 0         ; count = 0\n        push 2\n        store 4         ; k = 2\nouter:  load 4\n        push {n}\n        lt              ; k < {n} ?\n        push 0\n        or\n        jz done\n        push 2\n        store 8         ; d = 2\ninner:  load 8\n        dup\n        mul\n        load 4\n        gt              ; d * d > k ?\n        push 0\n        or\n        jnz prime\n        load 4\n        load 8\n        mod\n        push 0\n        or\n        jz next         ; k divisible by d\n        load 8\n        inc\n        store 8\n        jmp inner\nprime:  load 0\n        inc\n        store 0         ; count += 1\nnext:   load 4\n        inc\n        store 4         ; k += 1\n        jmp outer\ndone:   load 0\n        halt\n",
            n = a(0)
        ),
        Kind::Power => format!(
            "        push 1\n        store 0         ; result = 1\n        push {e}\n        store 4         ; e = {e}\nloop:   load 4\n        push 0\n        or\n        jz done\n        load 0\n        push {b}\n        mul\n        store 0         ; result *= {b}\n        load 4\n        dec\n        store 4\n        jmp loop\ndone:   load 0\n        halt\n",
            b = a(0),
            e = a(1)
        ),
        Kind::Collatz => format!(
            "        push 0\n        store 4         ; steps = 0\n        push {n}\n        store 0         ; n\nloop:   load 0\n        push 1\n        eq\n        jz done         ; n == 1\n        load 0\n        push 2\n        mod\n        push 0\n        or\n        jz even\n        load 0\n        push 3\n        mul\n        inc\n        store 0         ; odd: n = 3n + 1\n        jmp count\neven:   load 0\n        push 2\n        div\n        store 0         ; even: n = n / 2\ncount:  load 4\n        inc\n        store 4\n        jmp loop\ndone:   load 4\n        halt\n",
            n = a(0)
        ),
        Kind::DigitSum => format!(
            "        push 0\n        store 4         ; sum = 0\n        push {n}\n        store 0\nloop:   load 0\n        push 0\n        or\n        jz done\n        load 4\n        load 0\n        push 10\n        mod\n        add\n        store 4         ; sum += n mod 10\n        load 0\n        push 10\n        div\n        store 0         ; n /= 10\n        jmp loop\ndone:   load 4\n        halt\n",
            n = a(0)
        ),
        Kind::Isqrt => format!(
            "        push 0\n        store 0         ; r = 0\nloop:   load 0\n        inc\n        dup\n        mul             ; (r + 1)^2\n        push {n}\n        gt\n        push 0\n        or\n        jnz done\n        load 0\n        inc\n        store 0\n        jmp loop\ndone:   load 0\n        halt\n",
            n = a(0)
        ),
        Kind::Min | Kind::Max => {
            let keep = if q.kind == Kind::Min { "lt" } else { "gt" };
            let mut s = format!("        push {}\n        store 0         ; best so far\n", a(0));
            for (i, v) in q.args.iter().enumerate().skip(1) {
                s.push_str(&format!(
                    "        push {v}\n        dup\n        store 4\n        load 0\n        {keep}              ; better than the best?\n        push 0\n        or\n        jz keep{i}\n        load 4\n        store 0\nkeep{i}:\n"
                ));
            }
            s.push_str("        load 0\n        halt\n");
            s
        }
        Kind::Average => {
            let mut s = format!("        push {}\n", a(0));
            for v in q.args.iter().skip(1) {
                s.push_str(&format!("        push {v}\n        add\n"));
            }
            s.push_str(&format!("        push {}\n        div             ; total / count\n        halt\n", q.args.len()));
            s
        }
    };
    format!("{}{body}", header(q, "stack profile, variables in memory"))
}

/// A register-profile program for the same question, built from the question (not
/// translated from the stack program) and using the register ISA's own tools where
/// they differ (MIN/MAX, CMP_*, square-and-multiply for powers).
pub fn register(q: &Question) -> Result<(Vec<u8>, String), String> {
    let a = |i: usize| q.args.get(i).copied().unwrap_or(0) as i32;
    let mut r = RegAsm::new();
    r.note(&format!("{} — register profile", q.describe()));
    let (r1, r2, r3, r4, r5, r6, r7, r8) = (R(1), R(2), R(3), R(4), R(5), R(6), R(7), R(8));
    match q.kind {
        Kind::Fibonacci => {
            r.set(r1, 0);
            r.set(r2, 1);
            r.set(r3, a(0));
            r.label("loop");
            r.jz(r3, "done");
            r.add(r4, r1, r2);
            r.mov(r1, r2);
            r.mov(r2, r4);
            r.dec(r3);
            r.jmp("loop");
            r.label("done");
            r.push(r1);
        }
        Kind::Factorial => {
            r.set(r1, 1);
            r.set(r2, a(0));
            r.label("loop");
            r.jz(r2, "done");
            r.mul(r1, r1, r2);
            r.dec(r2);
            r.jmp("loop");
            r.label("done");
            r.push(r1);
        }
        Kind::SumRange | Kind::SumSquares => {
            r.set(r1, 0);
            r.set(r2, a(0));
            r.set(r3, a(1));
            r.label("loop");
            r.cmp_gt(r4, r2, r3);
            r.jnz(r4, "done");
            if q.kind == Kind::SumSquares {
                r.mul(r5, r2, r2);
                r.add(r1, r1, r5);
            } else {
                r.add(r1, r1, r2);
            }
            r.inc(r2);
            r.jmp("loop");
            r.label("done");
            r.push(r1);
        }
        Kind::Gcd | Kind::Lcm => {
            r.set(r1, a(0));
            r.set(r2, a(1));
            r.label("loop");
            r.jz(r2, "done");
            r.rem(r3, r1, r2);
            r.mov(r1, r2);
            r.mov(r2, r3);
            r.jmp("loop");
            r.label("done");
            if q.kind == Kind::Lcm {
                r.set(r4, a(0));
                r.div(r4, r4, r1);
                r.set(r5, a(1));
                r.mul(r4, r4, r5);
                r.push(r4);
            } else {
                r.push(r1);
            }
        }
        Kind::IsPrime => {
            r.set(r1, a(0));
            r.set(r2, 2);
            r.cmp_lt(r3, r1, r2);
            r.jnz(r3, "no");
            r.label("loop");
            r.mul(r4, r2, r2);
            r.cmp_gt(r5, r4, r1);
            r.jnz(r5, "yes");
            r.rem(r6, r1, r2);
            r.jz(r6, "no");
            r.inc(r2);
            r.jmp("loop");
            r.label("yes");
            r.set(r7, 1);
            r.push(r7);
            r.halt();
            r.label("no");
            r.set(r7, 0);
            r.push(r7);
        }
        Kind::CountPrimes => {
            r.set(r1, 0);
            r.set(r2, 2);
            r.set(r3, a(0));
            r.label("outer");
            r.cmp_lt(r4, r2, r3);
            r.jz(r4, "done");
            r.set(r5, 2);
            r.label("inner");
            r.mul(r6, r5, r5);
            r.cmp_gt(r7, r6, r2);
            r.jnz(r7, "prime");
            r.rem(r8, r2, r5);
            r.jz(r8, "next");
            r.inc(r5);
            r.jmp("inner");
            r.label("prime");
            r.inc(r1);
            r.label("next");
            r.inc(r2);
            r.jmp("outer");
            r.label("done");
            r.push(r1);
        }
        Kind::Power => {
            // Square and multiply: e's bits from the lowest.
            r.set(r1, 1);
            r.set(r2, a(0));
            r.set(r3, a(1));
            r.set(r5, 2);
            r.label("loop");
            r.jz(r3, "done");
            r.rem(r4, r3, r5);
            r.jz(r4, "even");
            r.mul(r1, r1, r2);
            r.label("even");
            r.mul(r2, r2, r2);
            r.div(r3, r3, r5);
            r.jmp("loop");
            r.label("done");
            r.push(r1);
        }
        Kind::Collatz => {
            r.set(r1, a(0));
            r.set(r2, 0);
            r.set(r3, 1);
            r.set(r4, 2);
            r.set(r5, 3);
            r.label("loop");
            r.cmp_eq(r6, r1, r3);
            r.jnz(r6, "done");
            r.rem(r7, r1, r4);
            r.jz(r7, "even");
            r.mul(r1, r1, r5);
            r.inc(r1);
            r.jmp("count");
            r.label("even");
            r.div(r1, r1, r4);
            r.label("count");
            r.inc(r2);
            r.jmp("loop");
            r.label("done");
            r.push(r2);
        }
        Kind::DigitSum => {
            r.set(r1, a(0));
            r.set(r2, 0);
            r.set(r3, 10);
            r.label("loop");
            r.jz(r1, "done");
            r.rem(r4, r1, r3);
            r.add(r2, r2, r4);
            r.div(r1, r1, r3);
            r.jmp("loop");
            r.label("done");
            r.push(r2);
        }
        Kind::Isqrt => {
            r.set(r1, a(0));
            r.set(r2, 0);
            r.label("loop");
            r.mov(r3, r2);
            r.inc(r3);
            r.mul(r4, r3, r3);
            r.cmp_gt(r5, r4, r1);
            r.jnz(r5, "done");
            r.mov(r2, r3);
            r.jmp("loop");
            r.label("done");
            r.push(r2);
        }
        Kind::Min | Kind::Max | Kind::Average => {
            r.set(r1, a(0));
            for i in 1..q.args.len() {
                r.set(r2, a(i));
                match q.kind {
                    Kind::Min => r.min(r1, r1, r2),
                    Kind::Max => r.max(r1, r1, r2),
                    _ => r.add(r1, r1, r2),
                }
            }
            if q.kind == Kind::Average {
                r.set(r2, q.args.len() as i32);
                r.div(r1, r1, r2);
            }
            r.push(r1);
        }
    }
    r.halt();
    r.finish()
}

/// A formula where one exists (and its intermediate values fit a word).
pub fn closed_form(q: &Question) -> Option<String> {
    let a = |i: usize| q.args.get(i).copied().unwrap_or(0);
    match q.kind {
        Kind::SumRange => {
            let (lo, hi) = (a(0), a(1));
            word((lo + hi) * (hi - lo + 1), "").ok()?;
            Some(format!(
                "{}        push {lo}\n        push {hi}\n        add             ; first + last\n        push {hi}\n        push {lo}\n        sub\n        inc             ; how many terms\n        mul\n        push 2\n        div\n        halt\n",
                header(q, "Gauss: (first + last) * count / 2")
            ))
        }
        Kind::SumSquares if a(0) == 1 => {
            let n = a(1);
            word(n * (n + 1) * (2 * n + 1), "").ok()?;
            Some(format!(
                "{}        push {n}\n        push {n}\n        inc\n        mul             ; n (n + 1)\n        push {n}\n        push 2\n        mul\n        inc\n        mul             ; * (2n + 1)\n        push 6\n        div\n        halt\n",
                header(q, "n (n + 1) (2n + 1) / 6")
            ))
        }
        _ => None,
    }
}

/// The loop unrolled at compile time, for short loops.
pub fn unrolled(q: &Question) -> Option<String> {
    let a = |i: usize| q.args.get(i).copied().unwrap_or(0);
    let mut s = header(q, "unrolled: no loop, no jumps");
    match q.kind {
        Kind::Fibonacci if a(0) <= 46 => {
            s.push_str("        push 0          ; F(0)\n        push 1          ; F(1)\n");
            for k in 0..a(0) {
                s.push_str(&format!(
                    "        swap\n        over\n        add             ; F({})\n",
                    k + 2
                ));
            }
            s.push_str("        pop\n        halt\n");
        }
        Kind::Factorial => {
            s.push_str("        push 1\n");
            for k in 2..=a(0) {
                s.push_str(&format!("        push {k}\n        mul\n"));
            }
            s.push_str("        halt\n");
        }
        Kind::Power if a(1) <= 62 => {
            s.push_str("        push 1\n");
            for _ in 0..a(1) {
                s.push_str(&format!("        push {}\n        mul\n", a(0)));
            }
            s.push_str("        halt\n");
        }
        Kind::SumRange | Kind::SumSquares if a(1) - a(0) < 64 => {
            s.push_str("        push 0\n");
            for i in a(0)..=a(1) {
                let t = if q.kind == Kind::SumSquares { i * i } else { i };
                s.push_str(&format!("        push {t}\n        add\n"));
            }
            s.push_str("        halt\n");
        }
        _ => return None,
    }
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use flux_core::{Config, Profile, Status};

    fn run(src: &Source) -> (Vec<i32>, Status) {
        let config = Config {
            max_steps: crate::MAX_STEPS,
            ..Config::default()
        };
        match src {
            Source::Stack(text) => {
                let code = flux_core::asm::assemble(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
                let r = flux_core::run(&code, &config);
                (r.stack, r.status)
            }
            Source::Reg(code, _) => {
                let r = flux_core::run(
                    code,
                    &Config {
                        profile: Profile::Reg,
                        ..config
                    },
                );
                (r.stack, r.status)
            }
        }
    }

    /// Every strategy of every pattern agrees with the direct answer, over many inputs.
    fn check(kind: Kind, inputs: Vec<Vec<i64>>) {
        let mut checked = 0;
        for args in inputs {
            let q = Question {
                kind,
                args: args.clone(),
            };
            let Ok(want) = q.direct() else { continue };
            for s in strategies(&q).unwrap() {
                let (stack, status) = run(&s.source);
                assert!(
                    matches!(status, Status::Halted),
                    "{kind:?} {args:?} {}: {status:?}",
                    s.name
                );
                assert_eq!(stack, vec![want as i32], "{kind:?} {args:?} {}", s.name);
            }
            checked += 1;
        }
        assert!(checked > 0, "{kind:?}: no input was in range");
    }

    #[test]
    fn sequences_and_products() {
        check(Kind::Fibonacci, (0..=46).map(|n| vec![n]).collect());
        check(Kind::Factorial, (0..=12).map(|n| vec![n]).collect());
        check(
            Kind::Power,
            (-3..=5)
                .flat_map(|b| (0..=12).map(move |e| vec![b, e]))
                .collect(),
        );
        check(
            Kind::Power,
            vec![vec![2, 30], vec![-2, 31], vec![46340, 2], vec![7, 11]],
        );
    }

    #[test]
    fn sums() {
        let ranges: Vec<Vec<i64>> = (-5..=5)
            .flat_map(|lo| (lo..=lo + 12).map(move |hi| vec![lo, hi]))
            .collect();
        check(Kind::SumRange, ranges.clone());
        check(
            Kind::SumRange,
            vec![vec![1, 100], vec![1, 65535], vec![-100, 100]],
        );
        check(Kind::SumSquares, ranges);
        check(
            Kind::SumSquares,
            vec![vec![1, 10], vec![1, 1000], vec![1, 1860]],
        );
    }

    #[test]
    fn number_theory() {
        let pairs: Vec<Vec<i64>> = (0..=30)
            .flat_map(|a| (0..=30).map(move |b| vec![a, b]))
            .collect();
        check(Kind::Gcd, pairs.clone());
        check(
            Kind::Gcd,
            vec![vec![2_147_483_647, 2_147_483_646], vec![1_071, 462]],
        );
        check(Kind::Lcm, pairs);
        check(
            Kind::IsPrime,
            (0..=200)
                .map(|n| vec![n])
                .chain([
                    vec![2_147_483_647 - 147_483_647 - 53],
                    vec![1_999_999_973],
                    vec![999_983],
                ])
                .collect(),
        );
        check(
            Kind::CountPrimes,
            (0..=120)
                .map(|n| vec![n])
                .chain([vec![1000], vec![2000]])
                .collect(),
        );
        check(
            Kind::Collatz,
            (1..=200)
                .map(|n| vec![n])
                .chain([vec![27], vec![77_031]])
                .collect(),
        );
        check(
            Kind::DigitSum,
            (0..=200)
                .map(|n| vec![n])
                .chain([vec![2_147_483_647], vec![9875]])
                .collect(),
        );
        check(
            Kind::Isqrt,
            (0..=300)
                .map(|n| vec![n])
                .chain([vec![2_000_000_000], vec![1_999_999_999]])
                .collect(),
        );
    }

    #[test]
    fn lists() {
        let lists = vec![
            vec![7],
            vec![7, 3, 9],
            vec![-5, -2, -9, 4],
            vec![0, 0],
            vec![2_147_483_647, -2_147_483_648],
            vec![1, 2, 3, 4, 5, 6, 7, 8, 9, 10, -11],
        ];
        check(Kind::Min, lists.clone());
        check(Kind::Max, lists.clone());
        check(
            Kind::Average,
            lists.into_iter().chain([vec![-7, 2], vec![9, 4]]).collect(),
        );
    }

    #[test]
    fn out_of_range_inputs_are_refused_not_wrapped() {
        for (kind, args) in [
            (Kind::Fibonacci, vec![47]),
            (Kind::Factorial, vec![13]),
            (Kind::Power, vec![2, 31]),
            (Kind::SumRange, vec![1, 100_000]),
            (Kind::Lcm, vec![0, 5]),
            (Kind::CountPrimes, vec![1_000_000]),
            (Kind::Gcd, vec![-4, 6]),
        ] {
            let q = Question { kind, args };
            assert!(q.direct().is_err(), "{q:?}");
        }
    }
}
