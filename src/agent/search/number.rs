//! Python numeric literals as the search sees them: parse one (`8`, `1_000`, `0.04`, `.5`,
//! `3.`, `3e-4`, `2**19`, negatives), step it up or down, and write the result back in the
//! same notation. Pure text in, text out; it never looks at files.

/// How a literal was written, so a changed value is written the same way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notation {
    /// `8`, `1_000` (underscores regrouped by thousands when the original had any).
    Int { underscores: bool },
    /// `0.04`, `.5` (no leading zero), `3.` (trailing dot).
    Plain {
        leading_zero: bool,
        trailing_dot: bool,
    },
    /// `3e-4`, `1E-3`, `1.0e+5`.
    Sci {
        mantissa_dot: bool,
        upper: bool,
        plus: bool,
    },
    /// `2**19`; `op` keeps the spacing around `**`.
    Pow { base: u64, exp: u32, op: String },
}

/// Which way a step goes: `Up` multiplies (or adds one), `Down` divides (or subtracts one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dir {
    Up,
    Down,
}

impl Dir {
    pub fn opposite(self) -> Dir {
        match self {
            Dir::Up => Dir::Down,
            Dir::Down => Dir::Up,
        }
    }
}

/// Step sizes, coarse to fine: ×2, ×1.5, ×1.25 (as exact ratios for integer rounding).
pub const LEVELS: [(u32, u32); 3] = [(2, 1), (3, 2), (5, 4)];

/// One numeric literal.
#[derive(Debug, Clone, PartialEq)]
pub struct Number {
    /// The literal exactly as written.
    pub text: String,
    pub negative: bool,
    pub notation: Notation,
    /// The value; for ints also exact in `int`.
    pub value: f64,
    /// Magnitude of an `Int` literal.
    pub int: Option<u128>,
    /// Significant digits written (at least 1), to keep stepped floats as short.
    sig_digits: usize,
}

impl Number {
    /// Parses a Python numeric literal; `None` for anything else (names, strings, tuples).
    pub fn parse(text: &str) -> Option<Number> {
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        if let Some(at) = body.find("**") {
            return parse_pow(text, negative, body, at);
        }
        let bytes = body.as_bytes();
        let mut i = 0;
        let int_part = digits(bytes, &mut i);
        let mut frac_part = None;
        if bytes.get(i) == Some(&b'.') {
            i += 1;
            frac_part = Some(digits(bytes, &mut i));
        }
        let mut exp_part = None;
        if matches!(bytes.get(i), Some(b'e' | b'E')) {
            let upper = bytes[i] == b'E';
            i += 1;
            let plus = bytes.get(i) == Some(&b'+');
            if matches!(bytes.get(i), Some(b'+' | b'-')) {
                i += 1;
            }
            let e = digits(bytes, &mut i);
            exp_part = Some((upper, plus, e));
        }
        if i != bytes.len() {
            return None;
        }
        let int_part = int_part?;
        let frac = match frac_part {
            Some(f) => Some(f?),
            None => None,
        };
        if int_part.is_empty() && frac.is_none_or(str::is_empty) {
            return None;
        }
        let clean: String = body.chars().filter(|&c| c != '_').collect();
        let value: f64 = clean.parse().ok()?;
        let value = if negative { -value } else { value };
        let mantissa: String = format!("{}{}", int_part, frac.unwrap_or(""));
        let sig_digits = mantissa
            .chars()
            .filter(char::is_ascii_digit)
            .skip_while(|&c| c == '0')
            .count()
            .max(1);
        let notation = match (frac, exp_part) {
            (None, None) => {
                let int: u128 = int_part.replace('_', "").parse().ok()?;
                return Some(Number {
                    text: text.to_string(),
                    negative,
                    notation: Notation::Int {
                        underscores: int_part.contains('_'),
                    },
                    value,
                    int: Some(int),
                    sig_digits,
                });
            }
            (frac, Some((upper, plus, e))) => {
                e.filter(|e| !e.is_empty())?;
                Notation::Sci {
                    mantissa_dot: frac.is_some(),
                    upper,
                    plus,
                }
            }
            (Some(f), None) => Notation::Plain {
                leading_zero: !int_part.is_empty(),
                trailing_dot: f.is_empty(),
            },
        };
        value.is_finite().then(|| Number {
            text: text.to_string(),
            negative,
            notation,
            value,
            int: None,
            sig_digits,
        })
    }

    /// True for a literal Python reads as a float (`0.0`, `3e-4`), not an int.
    pub fn is_float(&self) -> bool {
        matches!(self.notation, Notation::Plain { .. } | Notation::Sci { .. })
    }

    /// The literal one step away in `dir` at `level` (0 = ×2, 1 = ×1.5, 2 = ×1.25), in the
    /// same notation; `None` when there is no such step (an int would drop below 1, a power
    /// has no fine steps) or it would not change the text.
    pub fn step(&self, dir: Dir, level: usize) -> Option<String> {
        let (num, den) = *LEVELS.get(level)?;
        let out = match &self.notation {
            Notation::Pow { base, exp, op } => {
                // Exponent ±1 is both the coarsest and the finest move a power can make.
                if level > 0 {
                    return None;
                }
                let exp = match dir {
                    Dir::Up => exp.checked_add(1).filter(|&e| e <= 300)?,
                    Dir::Down => exp.checked_sub(1).filter(|&e| e >= 1)?,
                };
                let sign = if self.negative { "-" } else { "" };
                format!("{sign}{base}{op}{exp}")
            }
            Notation::Int { underscores } => {
                let mag = self.int?;
                let new = if mag == 0 {
                    // Zero means "off"; only switching it on is a step.
                    (level == 0 && dir == Dir::Up).then_some(1)?
                } else if level == 0 && mag < 4 {
                    match dir {
                        Dir::Up => mag + 1,
                        Dir::Down => mag - 1,
                    }
                } else {
                    let (n, d) = match dir {
                        Dir::Up => (num, den),
                        Dir::Down => (den, num),
                    };
                    // round(mag * n / d), half away from zero, exact in integers.
                    let twice = mag.checked_mul(2 * u128::from(n))?;
                    (twice + u128::from(d)) / (2 * u128::from(d))
                };
                if new < 1 {
                    return None;
                }
                let sign = if self.negative { "-" } else { "" };
                format!("{sign}{}", group_int(new, *underscores))
            }
            Notation::Plain { .. } | Notation::Sci { .. } => {
                let new = if self.value == 0.0 {
                    // A zero float (a warmup ratio, say) only moves to a small positive value.
                    match (level, dir) {
                        (0, Dir::Up) => 0.1,
                        (0, Dir::Down) => 0.05,
                        _ => return None,
                    }
                } else {
                    let f = f64::from(num) / f64::from(den);
                    match dir {
                        Dir::Up => self.value * f,
                        Dir::Down => self.value / f,
                    }
                };
                self.render_float(new)?
            }
        };
        (out != self.text).then_some(out)
    }

    /// Writes a float value in this literal's notation; `None` when not finite.
    pub fn render_float(&self, value: f64) -> Option<String> {
        // One digit more than written keeps ×2/÷2 exact; at least 4 keeps ÷1.5 readable.
        self.render_float_sig(value, (self.sig_digits + 1).clamp(4, 15))
    }

    /// Writes a float value in this literal's notation with `sig` significant digits
    /// (trailing zeros dropped); `None` when not finite.
    pub fn render_float_sig(&self, value: f64, sig: usize) -> Option<String> {
        if !value.is_finite() {
            return None;
        }
        let sig = sig.clamp(1, 17);
        let sci = format!("{:.*e}", sig - 1, value);
        let (mantissa, exp) = sci.split_once('e')?;
        let exp: i32 = exp.parse().ok()?;
        let mantissa = trim_zeros(mantissa);
        match &self.notation {
            Notation::Sci {
                mantissa_dot,
                upper,
                plus,
            } => {
                let mut m = mantissa.to_string();
                if *mantissa_dot && !m.contains('.') {
                    m.push_str(".0");
                }
                let e = if *upper { 'E' } else { 'e' };
                let p = if *plus && exp >= 0 { "+" } else { "" };
                Some(format!("{m}{e}{p}{exp}"))
            }
            Notation::Plain {
                leading_zero,
                trailing_dot,
            } => {
                // Parsing the rounded decimal back and printing it gives the shortest form
                // (no 0.30000000000000004).
                let rounded: f64 = sci.parse().ok()?;
                let mut s = format!("{rounded}");
                if !s.contains('.') {
                    s.push_str(if *trailing_dot { "." } else { ".0" });
                }
                if !leading_zero {
                    if let Some(rest) = s.strip_prefix("0.") {
                        s = format!(".{rest}");
                    } else if let Some(rest) = s.strip_prefix("-0.") {
                        s = format!("-.{rest}");
                    }
                }
                Some(s)
            }
            Notation::Int { .. } | Notation::Pow { .. } => None,
        }
    }
}

fn parse_pow(text: &str, negative: bool, body: &str, at: usize) -> Option<Number> {
    let base_text = body[..at].trim_end();
    let rest = &body[at + 2..];
    let exp_text = rest.trim_start();
    let op = body[base_text.len()..body.len() - exp_text.len()].to_string();
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(base_text) || !all_digits(exp_text) {
        return None;
    }
    let base: u64 = base_text.parse().ok()?;
    let exp: u32 = exp_text.parse().ok()?;
    if base < 2 || exp > 300 {
        return None;
    }
    let value = (base as f64).powi(exp as i32);
    if !value.is_finite() {
        return None;
    }
    Some(Number {
        text: text.to_string(),
        negative,
        notation: Notation::Pow { base, exp, op },
        value: if negative { -value } else { value },
        int: None,
        sig_digits: 1,
    })
}

/// Reads `[0-9](_?[0-9])*` (possibly empty); `None` when underscores are misplaced.
fn digits<'a>(bytes: &'a [u8], i: &mut usize) -> Option<&'a str> {
    let start = *i;
    while *i < bytes.len() && (bytes[*i].is_ascii_digit() || bytes[*i] == b'_') {
        *i += 1;
    }
    let s = std::str::from_utf8(&bytes[start..*i]).ok()?;
    let misplaced = s.starts_with('_') || s.ends_with('_') || s.contains("__");
    (!misplaced).then_some(s)
}

fn trim_zeros(mantissa: &str) -> &str {
    if mantissa.contains('.') {
        mantissa.trim_end_matches('0').trim_end_matches('.')
    } else {
        mantissa
    }
}

fn group_int(n: u128, underscores: bool) -> String {
    let s = n.to_string();
    if !underscores {
        return s;
    }
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push('_');
        }
        out.push(c);
    }
    out
}
