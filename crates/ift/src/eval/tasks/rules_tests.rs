use super::*;

#[test]
fn ties_pick_the_first() {
    assert_eq!(argmax_first(&[-1.0, -0.5, -0.5]), Some(1));
    assert_eq!(argmax_first(&[-2.0, -2.0]), Some(0));
    assert_eq!(argmax_first(&[]), None);
    assert_eq!(argmax_first(&[f64::NEG_INFINITY, -3.0]), Some(1));
}

#[test]
fn length_normalisation_can_change_the_winner() {
    let choices = vec!["a".to_string(), "longer one".to_string()];
    let ll = [-2.0, -5.0];
    assert_eq!(argmax_first(&ll), Some(0));
    let norm = char_normalised(&ll, &choices);
    assert_eq!(norm, vec![-2.0, -0.5]);
    assert_eq!(argmax_first(&norm), Some(1));
    // Characters, not bytes: "é" is one character.
    assert_eq!(char_normalised(&[-2.0], &["é".to_string()]), vec![-2.0]);
}

#[test]
fn acc_norm_divides_by_the_choice_without_its_delimiter() {
    // lm-eval: completion_len = [len(c) for c in doc_to_choice(doc)], the
    // choices without the " " it scores before them. Counting the space
    // (lengths 2 and 4) would pick choice 0 here: -2/2 > -5/4.
    let choices = ["a".to_string(), "bcd".to_string()];
    let norm = char_normalised(&[-2.0, -5.0], &choices);
    assert_eq!(argmax_first(&norm), Some(1));
}

#[test]
fn numbers_are_extracted() {
    assert_eq!(extract_last_number("The answer is 1,234."), Some(1234.0));
    assert_eq!(extract_last_number("so 3 + 4 = 7\n#### 42"), Some(42.0));
    assert_eq!(extract_last_number("it fell to -17 degrees"), Some(-17.0));
    assert_eq!(extract_last_number("costs 3.50 dollars"), Some(3.5));
    assert_eq!(extract_last_number("( 8.0 - 7.0 )"), Some(7.0));
    assert_eq!(extract_last_number("first 5 then 6."), Some(6.0));
    assert_eq!(extract_last_number("no digits here"), None);
    assert_eq!(extract_last_number("1,000,000 people"), Some(1_000_000.0));
}

#[test]
fn normalisation_and_exact_match() {
    assert_eq!(
        normalize_text("  The  Answer, is: PARIS! "),
        "the answer is paris"
    );
    assert!(exact_match("The answer is 1,234.", "1234"));
    assert!(exact_match("1.0", "1"));
    assert!(!exact_match("12", "1"));
    assert!(exact_match("so it is -3", "-3"));
    assert!(exact_match("Paris.", "paris"));
    assert!(!exact_match("Lyon", "Paris"));
    assert!(!exact_match("", "5"));
}
