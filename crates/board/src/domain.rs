//! Values a user types, parsed once into types that cannot hold bad input.
//!
//! Text fields lose their HTML tags (as the original board did with its
//! tag-stripping filter) and control characters, are trimmed, and must fit a
//! length limit; everything is still escaped when a page is rendered.

use std::fmt;

use serde::{Deserialize, Serialize};

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

/// Tags stripped, control characters removed (newlines kept if
/// `multiline`), whitespace trimmed.
fn clean(input: &str, multiline: bool) -> String {
    let stripped = strip_tags(input);
    let cleaned: String = stripped
        .chars()
        .filter(|&c| !c.is_control() || (multiline && c == '\n'))
        .collect();
    cleaned.trim().to_owned()
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
                bounded($field, clean(input, $multiline), $min, $max).map(Self)
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
    fn usernames_and_passwords() {
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
    }
}
