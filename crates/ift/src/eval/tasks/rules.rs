//! Scoring rules as pure functions: which choice wins, how answers are
//! normalised, which number a generation ends on.

/// Index of the largest score; the first one wins a tie (as `numpy.argmax`, so
/// results match lm-eval). `None` for an empty slice.
pub fn argmax_first(scores: &[f64]) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (i, &s) in scores.iter().enumerate() {
        // Strictly greater: a later equal score never displaces the first.
        if best.is_none_or(|b| s > scores[b]) {
            best = Some(i);
        }
    }
    best
}

/// lm-eval's `acc_norm`: each log-likelihood divided by its choice's length in
/// characters (Unicode scalar values, as Python's `len(str)`).
pub fn char_normalised(loglik: &[f64], choices: &[String]) -> Vec<f64> {
    loglik
        .iter()
        .zip(choices)
        .map(|(&l, c)| l / c.chars().count().max(1) as f64)
        .collect()
}

/// Lower case, punctuation dropped, whitespace collapsed: "The  Answer." == "the answer".
pub fn normalize_text(s: &str) -> String {
    let kept: String = s
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .flat_map(char::to_lowercase)
        .collect();
    kept.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The last number in `s`: an optional minus, digits with optional thousands
/// commas, an optional decimal part. "The answer is 1,234." → 1234;
/// "#### 42" → 42; "-3.5" → -3.5. A full stop ending a sentence is not a
/// decimal point (a digit must follow it).
pub fn extract_last_number(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < b.len() {
        if !b[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let negative = i > 0 && b[i - 1] == b'-';
        let mut text = String::new();
        while i < b.len() {
            let c = b[i];
            let digit_follows = i + 1 < b.len() && b[i + 1].is_ascii_digit();
            if c.is_ascii_digit() {
                text.push(c as char);
            } else if c == b',' && digit_follows && !text.contains('.') {
                // Thousands separator: dropped.
            } else if c == b'.' && digit_follows && !text.contains('.') {
                text.push('.');
            } else {
                break;
            }
            i += 1;
        }
        if let Ok(v) = text.parse::<f64>() {
            last = Some(if negative { -v } else { v });
        }
    }
    last
}

/// Exact match of a generation against the reference answer: numerically on
/// the last number when the answer is a number ("1" == "1.0"), otherwise on
/// normalised text.
pub fn exact_match(generated: &str, answer: &str) -> bool {
    match answer.trim().replace(',', "").parse::<f64>() {
        Ok(want) => extract_last_number(generated)
            .is_some_and(|got| (got - want).abs() <= 1e-6 * want.abs().max(1.0)),
        Err(_) => normalize_text(generated) == normalize_text(answer),
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
