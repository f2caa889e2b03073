//! "Did you mean ...?": the closest known name by edit distance, computed
//! in fixed-size buffers.

use crate::schema::Section;

/// Longest name compared; longer names get no suggestion.
const NAME_BYTES_MAX: usize = 48;

/// The closest key to `key` in any section, preferring `section` on ties:
/// `(key, section it is in)`.
pub(crate) fn key(key: &str, section: Option<Section>) -> Option<(&'static str, Section)> {
    let mut best: Option<(usize, &'static str, Section)> = None;
    // The current section first, so that it wins ties.
    let order = section.into_iter().chain(Section::ALL);
    for candidate_section in order {
        for &candidate in candidate_section.keys() {
            let Some(distance) = close(key, candidate) else {
                continue;
            };
            if best.is_none_or(|(best_distance, ..)| distance < best_distance) {
                best = Some((distance, candidate, candidate_section));
            }
        }
    }
    best.map(|(_, key, section)| (key, section))
}

/// The closest section header to `header` (written with its brackets).
pub(crate) fn section(header: &str) -> Option<&'static str> {
    let mut best: Option<(usize, &'static str)> = None;
    for section in Section::ALL {
        let candidate = section.header();
        if let Some(distance) = close(header, candidate) {
            if best.is_none_or(|(best_distance, _)| distance < best_distance) {
                best = Some((distance, candidate));
            }
        }
    }
    best.map(|(_, header)| header)
}

/// The distance from `name` to `candidate` if it is small enough to be a
/// likely typo: at most 2, and at most a third of the candidate's length
/// (but always allowing 1).
fn close(name: &str, candidate: &str) -> Option<usize> {
    let limit = (candidate.len() / 3).clamp(1, 2);
    let distance = distance(name.as_bytes(), candidate.as_bytes())?;
    (distance <= limit).then_some(distance)
}

/// Optimal string alignment distance (Levenshtein plus adjacent
/// transpositions), ignoring ASCII case. `None` if either side is longer
/// than [`NAME_BYTES_MAX`].
fn distance(a: &[u8], b: &[u8]) -> Option<usize> {
    if a.len() > NAME_BYTES_MAX || b.len() > NAME_BYTES_MAX {
        return None;
    }
    // Three rows of the dynamic-programming table: i-2, i-1 and i.
    let mut before = [0_usize; NAME_BYTES_MAX + 1];
    let mut previous = [0_usize; NAME_BYTES_MAX + 1];
    let mut current = [0_usize; NAME_BYTES_MAX + 1];
    for (j, cell) in previous.iter_mut().enumerate().take(b.len() + 1) {
        *cell = j;
    }
    for i in 1..=a.len() {
        current[0] = i;
        for j in 1..=b.len() {
            let cost = usize::from(!a[i - 1].eq_ignore_ascii_case(&b[j - 1]));
            let mut cell = (previous[j] + 1)
                .min(current[j - 1] + 1)
                .min(previous[j - 1] + cost);
            let transposed = i > 1
                && j > 1
                && a[i - 1].eq_ignore_ascii_case(&b[j - 2])
                && a[i - 2].eq_ignore_ascii_case(&b[j - 1]);
            if transposed {
                cell = cell.min(before[j - 2] + 1);
            }
            current[j] = cell;
        }
        before = previous;
        previous = current;
    }
    Some(previous[b.len()])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distances() {
        let d = |a: &str, b: &str| distance(a.as_bytes(), b.as_bytes());
        assert_eq!(d("", ""), Some(0));
        assert_eq!(d("abc", ""), Some(3));
        assert_eq!(d("", "abc"), Some(3));
        assert_eq!(d("kitten", "sitting"), Some(3));
        assert_eq!(d("path", "paht"), Some(1));
        assert_eq!(d("Workers", "workers"), Some(0));
        assert_eq!(d("comit_interval_us", "commit_interval_us"), Some(1));
        assert_eq!(d("ca", "abc"), Some(3));
        let long = [b'a'; NAME_BYTES_MAX + 1];
        assert_eq!(distance(&long, b"a"), None);
        assert_eq!(distance(&long[1..], &long[1..]), Some(0));
    }

    #[test]
    fn key_suggestions() {
        assert_eq!(
            key("comit_interval_us", Some(Section::Engine)),
            Some(("commit_interval_us", Section::Engine))
        );
        assert_eq!(
            key("commit_interval_us", Some(Section::Server)),
            Some(("commit_interval_us", Section::Engine))
        );
        assert_eq!(key("workers", None), Some(("workers", Section::Server)));
        assert_eq!(
            key("sqpol", Some(Section::Namespace)),
            Some(("sqpoll", Section::Namespace))
        );
        // Short names tolerate one edit only.
        assert_eq!(
            key("pat", Some(Section::Namespace)),
            Some(("path", Section::Namespace))
        );
        assert_eq!(key("pa", Some(Section::Namespace)), None);
        assert_eq!(key("colour", Some(Section::Server)), None);
    }

    #[test]
    fn keys_of_other_sections() {
        assert_eq!(
            key("size", Some(Section::Namespace)),
            Some(("size", Section::Namespace))
        );
        assert_eq!(
            key("listen", Some(Section::Tls)),
            Some(("listen", Section::Server))
        );
        assert_eq!(key("nsid", None), Some(("nsid", Section::Namespace)));
    }

    #[test]
    fn section_suggestions() {
        assert_eq!(section("[engin]"), Some("[engine]"));
        assert_eq!(section("[Server]"), Some("[server]"));
        assert_eq!(section("[namespace]"), Some("[[namespace]]"));
        assert_eq!(section("[[namespaces]]"), Some("[[namespace]]"));
        assert_eq!(section("[[server]]"), Some("[server]"));
        assert_eq!(section("[storage]"), None);
    }
}
