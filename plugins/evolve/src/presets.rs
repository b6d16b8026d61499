//! Targets in the spirit of the program-synthesis benchmark suites (PSB1/PSB2), each
//! with integer inputs on the initial stack, training cases and **held-out** test
//! cases: a run counts as solved only when its best program passes the held-out ones.

use crate::gp::Case;

pub struct Preset {
    pub name: &'static str,
    pub summary: &'static str,
    /// Step limit per case.
    pub max_steps: u64,
    pub f: fn(&[i32]) -> i32,
    /// Constants the problem names (PSB gives each problem its own), besides the
    /// common ones every run has.
    pub constants: &'static [i32],
    pub train: &'static [&'static [i32]],
    pub test: &'static [&'static [i32]],
}

impl Preset {
    fn cases(&self, inputs: &[&[i32]]) -> Vec<Case> {
        inputs
            .iter()
            .map(|i| Case {
                input: i.to_vec(),
                output: (self.f)(i),
            })
            .collect()
    }

    pub fn train(&self) -> Vec<Case> {
        self.cases(self.train)
    }

    pub fn test(&self) -> Vec<Case> {
        self.cases(self.test)
    }
}

fn gcd(a: i32, b: i32) -> i32 {
    let (mut a, mut b) = (a, b);
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

fn collatz(n: i32) -> i32 {
    let (mut n, mut s) = (n, 0);
    while n > 1 && s < 200 {
        n = if n % 2 == 0 { n / 2 } else { 3 * n + 1 };
        s += 1;
    }
    s
}

fn is_prime(n: i32) -> bool {
    n >= 2 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

pub static PRESETS: &[Preset] = &[
    Preset {
        name: "double",
        summary: "x → 2x",
        max_steps: 200,
        f: |i| i[0].wrapping_mul(2),
        constants: &[],
        train: &[
            &[0],
            &[1],
            &[2],
            &[-3],
            &[7],
            &[12],
            &[-20],
            &[55],
            &[100],
            &[-1],
        ],
        test: &[&[3], &[-8], &[41], &[999], &[-250], &[10_000]],
    },
    Preset {
        name: "absolute",
        summary: "x → |x|",
        max_steps: 200,
        f: |i| i[0].wrapping_abs(),
        constants: &[],
        train: &[
            &[0],
            &[1],
            &[-1],
            &[5],
            &[-5],
            &[17],
            &[-42],
            &[100],
            &[-100],
            &[-7],
        ],
        test: &[&[3], &[-8], &[41], &[-999], &[250], &[-10_000]],
    },
    Preset {
        name: "max-of-three",
        summary: "a b c → the largest",
        max_steps: 300,
        f: |i| i[0].max(i[1]).max(i[2]),
        constants: &[],
        train: &[
            &[1, 2, 3],
            &[3, 2, 1],
            &[2, 3, 1],
            &[-1, -5, -3],
            &[0, 0, 0],
            &[5, 5, 1],
            &[-7, 4, 4],
            &[9, -9, 0],
            &[1, 8, 2],
            &[10, 3, 7],
            &[-2, -1, -8],
            &[4, 6, 6],
        ],
        test: &[
            &[100, 50, 75],
            &[-10, -20, -5],
            &[7, 70, 700],
            &[3, 1, 2],
            &[0, -1, 1],
        ],
    },
    Preset {
        name: "small-or-large",
        summary: "n → 1 if n < 1000, 2 if n ≥ 2000, else 0",
        max_steps: 300,
        constants: &[1000, 2000],
        f: |i| {
            if i[0] < 1000 {
                1
            } else if i[0] >= 2000 {
                2
            } else {
                0
            }
        },
        train: &[
            &[0],
            &[500],
            &[999],
            &[1000],
            &[1500],
            &[1999],
            &[2000],
            &[2500],
            &[-50],
            &[5000],
            &[1200],
            &[10],
        ],
        test: &[&[998], &[1001], &[1998], &[2001], &[-1], &[9999]],
    },
    Preset {
        name: "sum-of-squares",
        summary: "n → 1² + 2² + … + n²",
        max_steps: 2000,
        f: |i| (1..=i[0]).map(|k| k * k).sum(),
        constants: &[],
        train: &[&[0], &[1], &[2], &[3], &[4], &[5], &[6], &[8], &[10]],
        test: &[&[7], &[9], &[12], &[15], &[20]],
    },
    Preset {
        name: "gcd",
        summary: "a b → gcd(a, b)",
        max_steps: 2000,
        f: |i| gcd(i[0], i[1]),
        constants: &[],
        train: &[
            &[12, 8],
            &[8, 12],
            &[7, 3],
            &[10, 5],
            &[9, 6],
            &[14, 21],
            &[5, 0],
            &[0, 5],
            &[17, 17],
            &[100, 75],
            &[36, 24],
            &[1, 9],
        ],
        test: &[&[48, 18], &[1071, 462], &[13, 39], &[27, 9], &[81, 54]],
    },
    Preset {
        name: "collatz-steps",
        summary: "n → steps to reach 1 (bounded at 200)",
        max_steps: 5000,
        f: |i| collatz(i[0]),
        constants: &[],
        train: &[&[1], &[2], &[3], &[4], &[5], &[6], &[7], &[8], &[10], &[12]],
        test: &[&[9], &[11], &[15], &[27], &[16]],
    },
    Preset {
        name: "fuel-cost",
        summary: "a b c → (a/3 − 2) + (b/3 − 2) + (c/3 − 2)",
        max_steps: 300,
        f: |i| i.iter().map(|m| m / 3 - 2).sum(),
        constants: &[],
        train: &[
            &[12, 14, 9],
            &[30, 30, 30],
            &[6, 7, 8],
            &[100, 50, 20],
            &[9, 9, 9],
            &[60, 3, 15],
            &[1969, 12, 14],
            &[33, 66, 99],
        ],
        test: &[
            &[100756, 1969, 12],
            &[45, 46, 47],
            &[300, 600, 900],
            &[21, 24, 27],
        ],
    },
    Preset {
        name: "digit-sum",
        summary: "n → the sum of its decimal digits",
        max_steps: 2000,
        constants: &[],
        f: |i| {
            let (mut n, mut s) = (i[0], 0);
            while n > 0 {
                s += n % 10;
                n /= 10;
            }
            s
        },
        train: &[
            &[0],
            &[5],
            &[9],
            &[10],
            &[19],
            &[45],
            &[99],
            &[123],
            &[500],
            &[808],
            &[1234],
            &[9999],
        ],
        test: &[&[77], &[321], &[4096], &[55555], &[90210]],
    },
    Preset {
        name: "count-primes",
        summary: "n → how many primes are below n",
        max_steps: 20_000,
        f: |i| (2..i[0]).filter(|k| is_prime(*k)).count() as i32,
        constants: &[],
        train: &[
            &[0],
            &[2],
            &[3],
            &[4],
            &[5],
            &[8],
            &[10],
            &[12],
            &[20],
            &[30],
        ],
        test: &[&[14], &[25], &[40], &[50], &[7]],
    },
    Preset {
        name: "last-digit",
        summary: "n → n mod 10 (n ≥ 0)",
        max_steps: 200,
        f: |i| i[0] % 10,
        constants: &[],
        train: &[
            &[0],
            &[7],
            &[10],
            &[13],
            &[99],
            &[101],
            &[555],
            &[1234],
            &[60],
            &[8],
        ],
        test: &[&[42], &[9001], &[77777], &[5]],
    },
];

pub fn find(name: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.name == name)
}

/// `--cases FILE`: `INPUTS -> OUTPUT` per line (the tool-case syntax, `; case:` prefix
/// optional); a line `---` starts the held-out cases, otherwise every fifth case is held
/// out. Returns (train, test).
pub fn parse_cases(text: &str) -> Result<(Vec<Case>, Vec<Case>), String> {
    let mut train = Vec::new();
    let mut test = Vec::new();
    let mut held = false;
    let mut explicit = false;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        let line = line.strip_prefix("; case:").unwrap_or(line).trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if line == "---" {
            held = true;
            explicit = true;
            continue;
        }
        let (ins, out) = line
            .split_once("->")
            .ok_or_else(|| format!("line {}: write `INPUTS -> OUTPUT`", n + 1))?;
        let input: Result<Vec<i32>, _> = ins
            .split([' ', ','])
            .filter(|w| !w.is_empty())
            .map(str::parse)
            .collect();
        let input = input.map_err(|_| format!("line {}: inputs must be 32-bit integers", n + 1))?;
        let output: i32 = out
            .trim()
            .parse()
            .map_err(|_| format!("line {}: the output must be one 32-bit integer", n + 1))?;
        let case = Case { input, output };
        if held {
            test.push(case)
        } else {
            train.push(case)
        }
        if train.len() + test.len() > 10_000 {
            return Err("more than 10000 cases".into());
        }
    }
    if !explicit {
        let all = std::mem::take(&mut train);
        for (i, c) in all.into_iter().enumerate() {
            if i % 5 == 4 {
                test.push(c)
            } else {
                train.push(c)
            }
        }
    }
    if train.is_empty() {
        return Err("no training cases".into());
    }
    Ok((train, test))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gene::{encode, lower, Gene::*};

    /// The gene set can express the targets: a hand-written genome for most presets
    /// passes every training and held-out case through flux-core (what evolution could
    /// find, and a check on the lowering of the blocks).
    #[test]
    fn the_genes_can_express_the_presets() {
        let max2 = [Over, Over, Lt, If(1), Swap, Pop];
        let fuel = [Push(3), Div, Dec, Dec];
        let solutions: Vec<(&str, Vec<crate::gene::Gene>)> = vec![
            ("double", vec![Dup, Add]),
            ("absolute", vec![Dup, Push(0), Lt, If(1), Neg]),
            ("max-of-three", [max2, max2].concat()),
            ("max-of-three", vec![Max, Max]),
            (
                "small-or-large",
                vec![Dup, Push(1000), Lt, Swap, Push(2000), Ge, Dup, Add, Add],
            ),
            (
                "sum-of-squares",
                vec![Push(0), Swap, Times(3), Dup, Mul, Add],
            ),
            ("gcd", vec![While(3), Swap, Over, Mod, Pop]),
            (
                "fuel-cost",
                [&fuel[..], &[Rot], &fuel, &[Add, Swap], &fuel, &[Add]].concat(),
            ),
            (
                "digit-sum",
                vec![
                    Push(0),
                    Swap,
                    While(8),
                    Dup,
                    Push(10),
                    Mod,
                    Rot,
                    Add,
                    Swap,
                    Push(10),
                    Div,
                    Pop,
                ],
            ),
            ("last-digit", vec![Push(10), Mod]),
        ];
        for (name, genes) in solutions {
            let p = find(name).unwrap();
            let code = encode(&lower(&genes));
            for c in p.train().iter().chain(&p.test()) {
                let config = flux_core::Config {
                    initial_stack: c.input.iter().map(|w| *w as u32).collect(),
                    max_steps: p.max_steps,
                    ..flux_core::Config::default()
                };
                let r = flux_core::run(&code, &config);
                assert_eq!(
                    r.stack,
                    vec![c.output],
                    "{name} on {:?}: {r:?}\n{}",
                    c.input,
                    crate::gene::source(&lower(&genes))
                );
            }
        }
    }

    #[test]
    fn at_least_ten_presets_with_held_out_cases() {
        assert!(PRESETS.len() >= 10);
        for p in PRESETS {
            assert!(p.train.len() >= 8 && p.test.len() >= 4, "{}", p.name);
            for c in p.test {
                assert!(
                    !p.train.contains(c),
                    "{}: {c:?} is both training and held out",
                    p.name
                );
            }
        }
        assert_eq!(find("gcd").unwrap().test()[1].output, 21);
        assert_eq!(find("count-primes").unwrap().test()[3].output, 15);
        assert_eq!(find("fuel-cost").unwrap().train()[0].output, 2 + 2 + 1);
    }

    #[test]
    fn case_files_split_training_and_held_out() {
        let (train, test) = parse_cases("1 -> 1\n2 -> 4\n; case: 3 -> 9\n---\n4 -> 16\n").unwrap();
        assert_eq!((train.len(), test.len()), (3, 1));
        let (train, test) = parse_cases("1->1\n2->4\n3->9\n4->16\n5->25\n6->36\n").unwrap();
        assert_eq!((train.len(), test.len()), (5, 1));
        assert!(parse_cases("x -> 1").is_err());
        assert!(parse_cases("").is_err());
        assert!(parse_cases("99999999999 -> 1").is_err());
    }

    proptest::proptest! {
        /// A case file is the user's (or another agent's) text: any text is read or
        /// refused, never a panic.
        #[test]
        fn any_case_file_is_read_or_refused(s in "([-0-9 ,>;a-z]{0,16}\n|---\n){0,12}") {
            let _ = parse_cases(&s);
        }
    }
}
