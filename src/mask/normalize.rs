//! Disguises undone for detection: a copy of the text with escapes decoded (`\n`, `\u0067`, as
//! left in JSON or code that was not parsed), percent-encoding undone, invisible characters
//! (zero-width spaces and joiners, soft hyphens, BOMs) dropped and full-width look-alikes mapped
//! to ASCII. Detectors run on the copy; what they find is mapped back to the span of the original
//! text, and that span is what gets masked.

/// A normalized copy of a text and the way back to the original's offsets.
pub struct Normalized {
    pub text: String,
    /// For each byte of `text`, where its source starts in the original; one more entry for
    /// the end.
    origin: Vec<u32>,
}

impl Normalized {
    /// The original span that produced `start..end` of the copy.
    pub fn original_span(&self, start: usize, end: usize) -> (usize, usize) {
        let s = self.origin[start.min(self.origin.len() - 1)] as usize;
        let e = self.origin[end.min(self.origin.len() - 1)] as usize;
        (s, e.max(s))
    }
}

/// Whether `text` holds anything normalizing would change; cheap, checked before copying.
fn needs(text: &str) -> bool {
    let b = text.as_bytes();
    memchr::memchr3(b'\\', b'%', 0xE2, b).is_some()
        || memchr::memmem::find(b, b"&#").is_some()
        || memchr::memchr2(0xEF, 0xC2, b).is_some()
        || memchr::memchr(0xE1, b).is_some()
}

/// The normalized copy of `text`, or `None` when it would be the same.
pub fn normalize(text: &str) -> Option<Normalized> {
    if !needs(text) || text.len() > u32::MAX as usize / 2 {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut origin: Vec<u32> = Vec::with_capacity(text.len() + 1);
    let mut changed = false;
    let b = text.as_bytes();
    let mut i = 0;
    let push = |out: &mut String, origin: &mut Vec<u32>, c: char, at: usize| {
        let before = out.len();
        out.push(c);
        origin.extend(std::iter::repeat_n(at as u32, out.len() - before));
    };
    while i < b.len() {
        // Copy the plain run up to the next byte that could start a disguise, in one go.
        let run = b[i..]
            .iter()
            .position(|&c| c == b'\\' || c == b'%' || c == b'&' || c >= 0x80)
            .map_or(b.len(), |n| i + n);
        if run > i {
            out.push_str(&text[i..run]);
            origin.extend(i as u32..run as u32);
            i = run;
            continue;
        }
        let c = b[i];
        if c == b'\\' {
            let (decoded, len) = match b.get(i + 1) {
                Some(b'n') => (Some('\n'), 2),
                Some(b'r') => (Some('\r'), 2),
                Some(b't') => (Some('\t'), 2),
                Some(b'"') => (Some('"'), 2),
                Some(b'\'') => (Some('\''), 2),
                Some(b'\\') => (Some('\\'), 2),
                Some(b'/') => (Some('/'), 2),
                Some(b'u') => match text
                    .get(i + 2..i + 6)
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                {
                    Some(code) if !(0xD800..0xE000).contains(&code) => (char::from_u32(code), 6),
                    _ => (None, 1),
                },
                Some(b'x') => match text
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(code) if code.is_ascii() => (Some(code as char), 4),
                    _ => (None, 1),
                },
                _ => (None, 1),
            };
            if let Some(d) = decoded {
                push(&mut out, &mut origin, d, i);
                i += len;
                changed = true;
                continue;
            }
        } else if c == b'&'
            && let Some((decoded, len)) = html_entity(&text[i..])
        {
            push(&mut out, &mut origin, decoded, i);
            i += len;
            changed = true;
            continue;
        } else if c == b'%'
            && let Some(code) = text
                .get(i + 1..i + 3)
                .filter(|h| h.bytes().all(|x| x.is_ascii_hexdigit()))
                .and_then(|h| u8::from_str_radix(h, 16).ok())
            && (0x20..0x7F).contains(&code)
        {
            push(&mut out, &mut origin, code as char, i);
            i += 3;
            changed = true;
            continue;
        } else if c >= 0x80 {
            let ch = text[i..].chars().next().unwrap_or('\u{FFFD}');
            let len = ch.len_utf8();
            if is_invisible(ch) {
                i += len;
                changed = true;
                continue;
            }
            if ('\u{FF01}'..='\u{FF5E}').contains(&ch) {
                let ascii = char::from_u32(ch as u32 - 0xFEE0).unwrap_or(ch);
                push(&mut out, &mut origin, ascii, i);
                i += len;
                changed = true;
                continue;
            }
            push(&mut out, &mut origin, ch, i);
            i += len;
            continue;
        }
        out.push(c as char);
        origin.push(i as u32);
        i += 1;
    }
    origin.push(b.len() as u32);
    changed.then_some(Normalized { text: out, origin })
}

/// An HTML character reference at the start of `s` (`&#95;`, `&#x5f;`, `&amp;`): the character
/// and the reference's length.
fn html_entity(s: &str) -> Option<(char, usize)> {
    let end = s.as_bytes().iter().take(12).position(|&b| b == b';')?;
    let body = &s[1..end];
    let c = if let Some(num) = body.strip_prefix('#') {
        let code = match num.strip_prefix(['x', 'X']) {
            Some(hex) => u32::from_str_radix(hex, 16).ok()?,
            None => num.parse().ok()?,
        };
        char::from_u32(code)?
    } else {
        match body {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            "sol" => '/',
            "lowbar" => '_',
            "equals" => '=',
            "colon" => ':',
            "commat" => '@',
            _ => return None,
        }
    };
    Some((c, end + 1))
}

/// Characters that render as nothing: a secret with one inside still works when pasted.
fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{2060}'..='\u{2064}'
            | '\u{FEFF}'
            | '\u{00AD}'
            | '\u{180E}'
            | '\u{034F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round(text: &str, needle: &str) -> String {
        let n = normalize(text).expect("changed");
        let at = n.text.find(needle).expect("needle in normalized text");
        let (s, e) = n.original_span(at, at + needle.len());
        text[s..e].to_owned()
    }

    #[test]
    fn maps_every_disguise_back_to_the_original_span() {
        assert_eq!(round("a\\nghp_x1 b", "ghp_x1"), "ghp_x1");
        assert_eq!(round("x=\\u0067hp_abc;", "ghp_abc"), "\\u0067hp_abc");
        assert_eq!(round("u=p%40ss%21w@h", "p@ss!w"), "p%40ss%21w");
        assert_eq!(
            round("tok gh\u{200B}p_ab\u{200D}cd end", "ghp_abcd"),
            "gh\u{200B}p_ab\u{200D}cd"
        );
        assert_eq!(round("ｇｈｐ＿ａｂ", "ghp_ab"), "ｇｈｐ＿ａｂ");
        assert_eq!(round("x ghp&#95;ab&#x43; y", "ghp_abC"), "ghp&#95;ab&#x43;");
        assert!(normalize("plain ascii, nothing to do").is_none());
        assert!(normalize("100% sure, é ü").is_none());
    }
}
