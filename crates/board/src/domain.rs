//! Values a user types, parsed once into types that cannot hold bad input.
//!
//! Text fields lose their control characters and invisible characters
//! (bidirectional overrides and isolates, zero-width spaces and joiners,
//! soft hyphens, every `Default_Ignorable_Code_Point`), are put in Unicode
//! normal form C, lose their HTML tags (as the original board did with its
//! tag-stripping filter), are trimmed, and must fit a length limit;
//! everything is still escaped when a page is rendered. So text cannot
//! reverse what follows it on the page, hide a tag from the tag filter
//! (`<\u{200B}b>`), or look filled while showing nothing.

use std::fmt;

use serde::{Deserialize, Serialize};
use unicode_normalization::UnicodeNormalization;

/// Why a value was refused, in words for the person who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

/// Removes HTML tags (`<b>`, `</p>`, `<!-- … -->`, `<?…?>`); a `<` that does
/// not start a tag (`1 < 2`) is kept. An unterminated tag is dropped to the
/// end of the text, as a browser would swallow it. Repeated until nothing
/// changes, so `<<b>a` does not leave a new `<a` behind.
pub fn strip_tags(input: &str) -> String {
    let mut text = strip_once(input);
    loop {
        let next = strip_once(&text);
        if next.len() == text.len() {
            return text;
        }
        text = next;
    }
}

fn strip_once(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.char_indices().peekable();
    while let Some((_, c)) = chars.next() {
        if c != '<' {
            out.push(c);
            continue;
        }
        let starts_tag = chars.peek().is_some_and(|&(_, next)| {
            next.is_ascii_alphabetic() || matches!(next, '/' | '!' | '?')
        });
        if !starts_tag {
            out.push(c);
            continue;
        }
        // Skip to the closing '>'.
        for (_, inner) in chars.by_ref() {
            if inner == '>' {
                break;
            }
        }
    }
    out
}

/// Characters that change how text around them is shown, or show nothing
/// themselves: `Default_Ignorable_Code_Point` (Unicode 16; it includes the
/// bidi embeddings, overrides, isolates and marks, U+200B–U+200F, U+2060–
/// U+206F, U+FEFF, U+00AD, U+061C, variation selectors, tag characters and
/// Hangul fillers) and the interlinear annotation controls.
pub fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'..='\u{1160}'
            | '\u{17B4}'..='\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFFB}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Control and invisible characters removed (newlines kept if
/// `multiline`), tags stripped, NFC, whitespace trimmed. Removal comes
/// first so an invisible character cannot hide a tag from the filter;
/// NFC after stripping, which can bring a base and its accent together.
fn clean(input: &str, multiline: bool) -> String {
    let visible: String = input
        .chars()
        .filter(|&c| !is_invisible(c) && (!c.is_control() || (multiline && c == '\n')))
        .collect();
    let normal: String = strip_tags(&visible).nfc().collect();
    normal.trim().to_owned()
}

/// `clean`, refusing text that was only invisible characters (and spaces):
/// it would look filled in the form and show nothing on the page.
fn clean_visible(field: &str, input: &str, multiline: bool) -> Result<String, Invalid> {
    let cleaned = clean(input, multiline);
    let had_hidden = input
        .chars()
        .any(|c| is_invisible(c) || (c.is_control() && !c.is_whitespace()));
    if cleaned.is_empty() && had_hidden {
        return Err(Invalid(format!(
            "The {} has no visible characters.",
            field.to_lowercase()
        )));
    }
    Ok(cleaned)
}

fn bounded(field: &str, value: String, min: usize, max: usize) -> Result<String, Invalid> {
    let chars = value.chars().count();
    if chars < min {
        return Err(Invalid(if min == 1 {
            format!("{field} is required.")
        } else {
            format!("{field} must be at least {min} characters.")
        }));
    }
    if chars > max {
        return Err(Invalid(format!(
            "{field} must be at most {max} characters."
        )));
    }
    Ok(value)
}

macro_rules! text_newtype {
    ($(#[$doc:meta])* $name:ident, $field:literal, $min:expr, $max:expr, $multiline:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted value, in characters.
            pub const MAX: usize = $max;

            /// Cleans and checks `input`.
            ///
            /// # Errors
            /// When the cleaned text is empty (if required) or too long.
            pub fn parse(input: &str) -> Result<Self, Invalid> {
                bounded($field, clean_visible($field, input, $multiline)?, $min, $max).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_newtype!(
    /// Who a message is signed by (free text, defaults to the user name).
    Author, "Author", 1, 60, false
);
text_newtype!(
    /// Where the picture was taken (optional).
    Location, "Location", 0, 100, false
);
text_newtype!(
    /// What the message says.
    Description, "Description", 1, 1000, true
);

/// An account name: 3 to 32 letters, digits, `_`, `-` or `.`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Username(String);

impl Username {
    /// Checks `input` (surrounding spaces are ignored).
    ///
    /// # Errors
    /// When it is too short, too long or has other characters.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let name = input.trim();
        let len = name.chars().count();
        if !(3..=32).contains(&len) {
            return Err(Invalid("User name must be 3 to 32 characters.".into()));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        {
            return Err(Invalid(
                "User name may only use letters, digits, '_', '-' and '.'.".into(),
            ));
        }
        Ok(Self(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password: 8 to 128 characters. Never printed.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    /// Shortest accepted password.
    pub const MIN: usize = 8;
    /// Longest accepted password (argon2 cost grows with it).
    pub const MAX: usize = 128;

    /// Checks the length of a new password.
    ///
    /// # Errors
    /// When it is too short or too long.
    pub fn parse(input: &str) -> Result<Self, Invalid> {
        let len = input.chars().count();
        if len < Self::MIN {
            return Err(Invalid(format!(
                "Password must be at least {} characters.",
                Self::MIN
            )));
        }
        if len > Self::MAX {
            return Err(Invalid(format!(
                "Password must be at most {} characters.",
                Self::MAX
            )));
        }
        Ok(Self(input.to_owned()))
    }

    /// The password, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags_are_stripped_but_comparisons_stay() {
        assert_eq!(strip_tags("<b>hi</b> there"), "hi there");
        assert_eq!(strip_tags("<script>alert(1)</script>x"), "alert(1)x");
        assert_eq!(strip_tags("1 < 2 and 3 > 2"), "1 < 2 and 3 > 2");
        assert_eq!(strip_tags("a <!-- note --> b"), "a  b");
        assert_eq!(strip_tags("<img src=x onerror=alert(1)>"), "");
        assert_eq!(strip_tags("open <a href"), "open ");
        assert_eq!(strip_tags("<<b>a>x"), "x");
    }

    #[test]
    fn text_fields_are_cleaned_and_bounded() {
        assert_eq!(
            Author::parse("  <i>Ada</i> ").map(Author::into_inner),
            Ok("Ada".into())
        );
        assert!(Author::parse("<b></b>").is_err());
        assert!(Author::parse(&"a".repeat(61)).is_err());
        assert_eq!(
            Location::parse("").map(Location::into_inner),
            Ok(String::new())
        );
        assert_eq!(
            Description::parse("line one\nline\u{7} two").map(Description::into_inner),
            Ok("line one\nline two".into())
        );
    }

    #[test]
    fn invisible_and_bidi_characters_are_removed() {
        // An override that would show "exe.txt" for "txt.exe", isolates,
        // marks, zero-width spaces and joiners, BOM, soft hyphen.
        assert_eq!(
            Description::parse("report\u{202E}txt.exe\u{202C} \u{2066}x\u{2069}\u{200E}\u{061C}")
                .map(Description::into_inner),
            Ok("reporttxt.exe x".into())
        );
        assert_eq!(
            Author::parse("A\u{200B}d\u{200C}a\u{200D}\u{2060}\u{FEFF}\u{00AD}")
                .map(Author::into_inner),
            Ok("Ada".into())
        );
        // An invisible character does not hide a tag from the filter.
        assert_eq!(
            Author::parse("<\u{200B}b>Ada").map(Author::into_inner),
            Ok("Ada".into())
        );
    }

    #[test]
    fn text_is_nfc() {
        // "e" + combining acute becomes one "é"; the limit counts it once.
        assert_eq!(
            Location::parse("Cafe\u{301}").map(Location::into_inner),
            Ok("Caf\u{E9}".into())
        );
        let decomposed = "e\u{301}".repeat(60);
        assert_eq!(
            Author::parse(&decomposed).map(|a| a.as_str().chars().count()),
            Ok(60)
        );
    }

    #[test]
    fn only_invisible_text_is_refused_with_a_clear_message() {
        assert_eq!(
            Description::parse("\u{200B}\u{200B} \u{202E}"),
            Err(Invalid("The description has no visible characters.".into()))
        );
        assert_eq!(
            Author::parse("\u{3164}"),
            Err(Invalid("The author has no visible characters.".into()))
        );
        assert_eq!(
            Location::parse("\u{FEFF}"),
            Err(Invalid("The location has no visible characters.".into()))
        );
        // Plain emptiness keeps its own messages.
        assert_eq!(
            Author::parse("   "),
            Err(Invalid("Author is required.".into()))
        );
        assert_eq!(
            Location::parse(" ").map(Location::into_inner),
            Ok(String::new())
        );
    }

    #[test]
    fn usernames_and_passwords() {
        assert!(Username::parse("ad\u{200B}a").is_err());
        assert!(Username::parse("\u{202E}ada").is_err());
        assert!(Username::parse("ada").is_ok());
        assert!(Username::parse("ad").is_err());
        assert!(Username::parse("ada lovelace").is_err());
        assert!(Username::parse("<ada>").is_err());
        assert!(Password::parse("short").is_err());
        assert!(Password::parse("long enough").is_ok());
        assert!(Password::parse(&"x".repeat(129)).is_err());
        assert_eq!(
            format!("{:?}", Password::parse("secret-pw").ok()),
            "Some(Password(…))"
        );
    }

    proptest! {
        #[test]
        fn stripped_text_has_no_tags(input in ".{0,200}") {
            let out = strip_tags(&input);
            // No '<' that starts a tag survives.
            let bytes: Vec<char> = out.chars().collect();
            for pair in bytes.windows(2) {
                prop_assert!(!(pair[0] == '<' && (pair[1].is_ascii_alphabetic() || matches!(pair[1], '/' | '!' | '?'))));
            }
        }

        #[test]
        fn parsed_descriptions_fit(input in "\\PC{0,1200}") {
            if let Ok(d) = Description::parse(&input) {
                prop_assert!(!d.as_str().is_empty());
                prop_assert!(d.as_str().chars().count() <= Description::MAX);
            }
        }

        #[test]
        fn parsed_text_has_nothing_invisible_and_is_nfc(
            input in "[a-z<> \\n\u{200B}-\u{200F}\u{202A}-\u{202E}\u{2066}-\u{2069}\u{FEFF}\u{AD}\u{301}\u{E9}\u{7}]{0,80}"
        ) {
            for parsed in [
                Description::parse(&input).map(Description::into_inner),
                Author::parse(&input).map(Author::into_inner),
                Location::parse(&input).map(Location::into_inner),
            ]
            .into_iter()
            .flatten()
            {
                prop_assert!(!parsed.chars().any(|c| is_invisible(c) || (c.is_control() && c != '\n')));
                prop_assert!(unicode_normalization::is_nfc(&parsed));
                prop_assert_eq!(parsed.trim(), parsed.as_str());
            }
        }

        #[test]
        fn text_with_any_visible_character_is_not_refused_as_invisible(
            visible in "[a-zA-Z0-9]{1,20}",
            hidden in "[\u{200B}-\u{200D}\u{202A}-\u{202E}\u{2060}\u{FEFF}]{0,10}",
        ) {
            let input = format!("{hidden}{visible}{hidden}");
            prop_assert_eq!(Description::parse(&input).map(Description::into_inner), Ok(visible));
        }
    }
}
