//! Reading a question: which pattern it asks for and its numbers. Deterministic and
//! small on purpose — a documented pattern library, not a language model: a question
//! it does not know is answered with the nearest patterns it does.

use crate::patterns::{Kind, Question, PATTERNS};

/// Why a question could not be compiled.
#[derive(Debug, Clone, PartialEq)]
pub enum Refusal {
    /// No pattern matches; the nearest ones, best first.
    Unknown { nearest: Vec<&'static str> },
    /// A pattern matched, but its inputs are wrong (message says how).
    Inputs(String),
    /// The question gives examples (`f(1)=1, f(2)=4`): a job for `evolve`.
    Examples(Vec<(Vec<i64>, i64)>),
}

const NUMBER_WORDS: &[&str] = &[
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
    "twenty",
    "thirty",
    "forty",
    "fifty",
    "sixty",
    "seventy",
    "eighty",
    "ninety",
    "hundred",
    "thousand",
    "million",
    "first",
    "second",
    "third",
    "fourth",
    "fifth",
    "sixth",
    "seventh",
    "eighth",
    "ninth",
    "tenth",
];

/// Words and integers (ordinals such as `10th` read as 10; a minus sign directly before
/// digits makes them negative).
fn tokens(text: &str) -> Result<(Vec<String>, Vec<i64>), String> {
    let lower = text.to_lowercase();
    let chars: Vec<char> = lower.chars().collect();
    let mut words = Vec::new();
    let mut numbers = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let negative = c == '-'
            && chars.get(i + 1).is_some_and(char::is_ascii_digit)
            && (i == 0 || !chars[i - 1].is_alphanumeric());
        if c.is_ascii_digit() || negative {
            let start = if negative { i + 1 } else { i };
            let mut j = start;
            while j < chars.len() && (chars[j].is_ascii_digit() || chars[j] == '_') {
                j += 1;
            }
            if chars.get(j) == Some(&'.') && chars.get(j + 1).is_some_and(char::is_ascii_digit) {
                return Err("only whole numbers are understood".into());
            }
            let digits: String = chars[start..j].iter().filter(|c| **c != '_').collect();
            let value: i64 = digits
                .parse()
                .map_err(|_| format!("{digits} is too large a number"))?;
            numbers.push(if negative { -value } else { value });
            // An ordinal suffix belongs to the number.
            let rest: String = chars[j..].iter().take(2).collect();
            if ["st", "nd", "rd", "th"].contains(&rest.as_str())
                && !chars.get(j + 2).is_some_and(|c| c.is_alphabetic())
            {
                j += 2;
            }
            i = j;
        } else if c.is_alphabetic() {
            let mut j = i;
            while j < chars.len() && chars[j].is_alphabetic() {
                j += 1;
            }
            words.push(chars[i..j].iter().collect());
            i = j;
        } else {
            if matches!(c, '!' | '^') {
                words.push(c.to_string());
            }
            if c == '*' && chars.get(i + 1) == Some(&'*') {
                words.push("^".into());
                i += 1;
            }
            i += 1;
        }
    }
    Ok((words, numbers))
}

/// `f(1)=1, f(2)=4` examples: inputs and outputs.
fn examples(text: &str) -> Vec<(Vec<i64>, i64)> {
    let mut out = Vec::new();
    for part in text.split([',', ';']) {
        let Some((lhs, rhs)) = part.split_once('=') else {
            continue;
        };
        let Some(inner) = lhs
            .trim()
            .strip_suffix(')')
            .and_then(|l| l.split_once('('))
            .map(|(_, a)| a)
        else {
            continue;
        };
        let inputs: Result<Vec<i64>, _> = inner
            .split_whitespace()
            .flat_map(|s| s.split(','))
            .filter(|s| !s.is_empty())
            .map(str::parse)
            .collect();
        if let (Ok(inputs), Ok(output)) = (inputs, rhs.trim().parse::<i64>()) {
            out.push((inputs, output));
        }
    }
    out
}

fn has(words: &[String], any: &[&str]) -> bool {
    words.iter().any(|w| any.contains(&w.as_str()))
}

fn phrase(text: &str, any: &[&str]) -> bool {
    any.iter().any(|p| text.contains(p))
}

/// Parse a question into a pattern and its inputs.
pub fn parse(text: &str) -> Result<Question, Refusal> {
    let found = examples(text);
    if found.len() >= 2 {
        return Err(Refusal::Examples(found));
    }
    let (words, nums) = tokens(text).map_err(Refusal::Inputs)?;
    let lower = text.to_lowercase();
    let number_words: Vec<&String> = words
        .iter()
        .filter(|w| NUMBER_WORDS.contains(&w.as_str()))
        .collect();
    let kind = if phrase(&lower, &["sum of squares", "sum of the squares"])
        || (has(&words, &["squares"]) && has(&words, &["sum", "add", "total"]))
    {
        Kind::SumSquares
    } else if has(&words, &["digit", "digits"]) && has(&words, &["sum", "add", "total"]) {
        Kind::DigitSum
    } else if has(&words, &["fibonacci", "fib"]) {
        Kind::Fibonacci
    } else if has(&words, &["factorial", "!"]) {
        Kind::Factorial
    } else if has(&words, &["gcd", "gcf", "hcf"])
        || phrase(&lower, &["greatest common", "highest common"])
    {
        Kind::Gcd
    } else if has(&words, &["lcm"])
        || phrase(
            &lower,
            &[
                "least common multiple",
                "lowest common multiple",
                "smallest common multiple",
            ],
        )
    {
        Kind::Lcm
    } else if has(&words, &["primes"])
        || (has(&words, &["prime"]) && phrase(&lower, &["how many", "count", "number of"]))
    {
        Kind::CountPrimes
    } else if has(&words, &["prime"]) {
        Kind::IsPrime
    } else if has(&words, &["collatz", "hailstone"]) {
        Kind::Collatz
    } else if has(&words, &["sqrt", "isqrt"]) || phrase(&lower, &["square root"]) {
        Kind::Isqrt
    } else if has(&words, &["power", "pow", "raised", "^", "exponent"]) {
        Kind::Power
    } else if has(&words, &["average", "mean", "avg"]) {
        Kind::Average
    } else if has(&words, &["min", "minimum", "smallest", "lowest", "least"]) {
        Kind::Min
    } else if has(
        &words,
        &[
            "max", "maximum", "largest", "biggest", "highest", "greatest",
        ],
    ) {
        Kind::Max
    } else if has(&words, &["sum", "add", "total"]) {
        Kind::SumRange
    } else {
        if !number_words.is_empty() && nums.is_empty() {
            return Err(Refusal::Inputs(format!(
                "numbers in words are not understood (`{}`): write them in digits, e.g. 10",
                number_words[0]
            )));
        }
        return Err(Refusal::Unknown {
            nearest: nearest(&words),
        });
    };
    if nums.is_empty() && !number_words.is_empty() {
        return Err(Refusal::Inputs(format!(
            "numbers in words are not understood (`{}`): write them in digits, e.g. 10",
            number_words[0]
        )));
    }
    let name = crate::patterns::info(kind).name;
    let example = crate::patterns::info(kind).example;
    let need = |n: usize| -> Result<(), Refusal> {
        if nums.len() == n {
            Ok(())
        } else {
            Err(Refusal::Inputs(format!(
                "{name} needs {n} number{}; found {}. For example: {example}",
                if n == 1 { "" } else { "s" },
                nums.len()
            )))
        }
    };
    let args = match kind {
        Kind::SumRange | Kind::SumSquares => match nums.as_slice() {
            [n] => vec![1, *n],
            [a, b] => vec![*a.min(b), *a.max(b)],
            _ => {
                return Err(Refusal::Inputs(format!(
                    "{name} needs 1 or 2 numbers; found {}. For example: {example}",
                    nums.len()
                )))
            }
        },
        Kind::Gcd | Kind::Lcm | Kind::Power => {
            need(2)?;
            nums.clone()
        }
        Kind::Min | Kind::Max | Kind::Average => {
            if nums.is_empty() {
                need(1)?;
            }
            nums.clone()
        }
        _ => {
            need(1)?;
            nums.clone()
        }
    };
    let q = Question { kind, args };
    q.direct().map_err(Refusal::Inputs)?;
    Ok(q)
}

/// The patterns whose words are nearest the question's, best first (at most three).
pub fn nearest(words: &[String]) -> Vec<&'static str> {
    let mut scored: Vec<(f64, &'static str)> = PATTERNS
        .iter()
        .map(|p| {
            let best = words
                .iter()
                .flat_map(|w| p.words.iter().map(move |k| strsim::jaro_winkler(w, k)))
                .fold(0.0, f64::max);
            (best, p.example)
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.into_iter().take(3).map(|(_, e)| e).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(text: &str) -> Question {
        parse(text).unwrap_or_else(|e| panic!("{text}: {e:?}"))
    }

    #[test]
    fn questions_in_many_phrasings() {
        assert_eq!(
            q("fibonacci 10"),
            Question {
                kind: Kind::Fibonacci,
                args: vec![10]
            }
        );
        assert_eq!(q("What is the 10th Fibonacci number?").args, vec![10]);
        assert_eq!(
            q("sum the numbers 1 through 100"),
            Question {
                kind: Kind::SumRange,
                args: vec![1, 100]
            }
        );
        assert_eq!(q("sum from 10 to 1").args, vec![1, 10]);
        assert_eq!(
            q("sum of squares up to 10"),
            Question {
                kind: Kind::SumSquares,
                args: vec![1, 10]
            }
        );
        assert_eq!(q("7!").kind, Kind::Factorial);
        assert_eq!(q("is 97 prime").kind, Kind::IsPrime);
        assert_eq!(
            q("how many primes are there below 100?").kind,
            Kind::CountPrimes
        );
        assert_eq!(q("count the primes under 50").args, vec![50]);
        assert_eq!(q("gcd of 48 and 18").args, vec![48, 18]);
        assert_eq!(q("least common multiple of 4 and 6").kind, Kind::Lcm);
        assert_eq!(
            q("2^10"),
            Question {
                kind: Kind::Power,
                args: vec![2, 10]
            }
        );
        assert_eq!(q("3 to the power of 4").args, vec![3, 4]);
        assert_eq!(q("collatz steps for 27").kind, Kind::Collatz);
        assert_eq!(q("digit sum of 9875").kind, Kind::DigitSum);
        assert_eq!(q("square root of 99").kind, Kind::Isqrt);
        assert_eq!(q("max of 7, -3, 9").args, vec![7, -3, 9]);
        assert_eq!(q("smallest of 7 3 9").kind, Kind::Min);
        assert_eq!(q("average of 2, 4, 9").kind, Kind::Average);
    }

    #[test]
    fn refusals_say_why() {
        assert!(
            matches!(parse("fibonacci ten"), Err(Refusal::Inputs(m)) if m.contains("in digits"))
        );
        assert!(
            matches!(parse("gcd of 4"), Err(Refusal::Inputs(m)) if m.contains("gcd needs 2 numbers"))
        );
        assert!(
            matches!(parse("fibonacci 50"), Err(Refusal::Inputs(m)) if m.contains("overflows"))
        );
        assert!(
            matches!(parse("average of 1.5 and 2"), Err(Refusal::Inputs(m)) if m.contains("whole numbers"))
        );
        match parse("design a FLUX opcode for causal reasoning") {
            Err(Refusal::Unknown { nearest }) => assert_eq!(nearest.len(), 3),
            other => panic!("{other:?}"),
        }
        match parse("fibonaci of 10 please") {
            // A misspelling is not guessed at, but it is the first suggestion.
            Err(Refusal::Unknown { nearest }) => {
                assert!(nearest[0].starts_with("fibonacci"), "{nearest:?}")
            }
            other => panic!("{other:?}"),
        }
        match parse("f(1)=1, f(2)=4, f(3)=9, f(4)=16") {
            Err(Refusal::Examples(e)) => assert_eq!(
                e,
                vec![(vec![1], 1), (vec![2], 4), (vec![3], 9), (vec![4], 16)]
            ),
            other => panic!("{other:?}"),
        }
    }

    proptest::proptest! {
        #[test]
        fn any_text_is_parsed_or_refused(s in "\\PC{0,80}") {
            let _ = parse(&s);
        }
    }
}
