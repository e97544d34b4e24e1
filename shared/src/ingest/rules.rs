//! Which rules apply to an object event, with S3's semantics: disabled rules never
//! apply, every destination gets at most one job, and when several rules send the same
//! object to the same destination the one with the highest Priority decides.

use crate::config::{DeleteMode, Rule, SourceBucket};
use crate::events::Change;

/// Rules that could apply before tags are known, and whether any needs the object's tags.
pub fn candidates<'a>(source: &'a SourceBucket, key: &str, change: Change) -> Vec<&'a Rule> {
    source
        .rules
        .iter()
        .filter(|r| r.enabled && r.filter.matches_key(key))
        // A deleted object has no tags left to match; S3 refuses delete replication on
        // tag-filtered rules for the same reason.
        .filter(|r| !(is_delete(change) && r.filter.needs_tags()))
        .collect()
}

fn is_delete(change: Change) -> bool {
    matches!(change, Change::DeleteMarker | Change::VersionDeleted)
}

/// Whether the winning rule replicates this change at all.
fn replicates(rule: &Rule, change: Change) -> bool {
    match change {
        Change::Created | Change::TagsChanged | Change::AclChanged | Change::LockChanged => true,
        Change::DeleteMarker => rule.destination.delete_mode != DeleteMode::None,
        Change::VersionDeleted => rule.destination.delete_mode == DeleteMode::All,
    }
}

pub fn needs_tags(candidates: &[&Rule]) -> bool {
    candidates.iter().any(|r| r.filter.needs_tags())
}

/// The rules that win, one per destination, and that replicate `change`. Priority is
/// settled first, as in S3: a higher-priority rule that does not replicate deletes
/// keeps a lower one from replicating them to the same destination. `tags` is the
/// object's tags when some candidate needs them (else ignored).
pub fn select<'a>(
    candidates: &[&'a Rule],
    tags: &[(String, String)],
    change: Change,
) -> Vec<&'a Rule> {
    let mut winners: Vec<&'a Rule> = Vec::new();
    for rule in candidates
        .iter()
        .copied()
        .filter(|r| r.filter.matches_tags(tags))
    {
        let same_destination = winners.iter().position(|w| {
            w.destination.bucket == rule.destination.bucket
                && w.destination.endpoint == rule.destination.endpoint
        });
        match same_destination {
            None => winners.push(rule),
            // Highest priority wins; on a tie (V1 rules have none) the first rule does.
            Some(i) if rule.priority.unwrap_or(0) > winners[i].priority.unwrap_or(0) => {
                winners[i] = rule
            }
            Some(_) => {}
        }
    }
    winners.retain(|w| replicates(w, change));
    winners
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn config() -> Config {
        Config::parse(include_str!("../../../tests/fixtures/config/matching.json")).unwrap()
    }

    fn ids(rules: &[&Rule]) -> Vec<String> {
        let mut v: Vec<String> = rules.iter().map(|r| r.id.clone()).collect();
        v.sort();
        v
    }

    fn tags(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn priorities_settle_rules_to_one_destination() {
        let c = config();
        let src = c.source("src").unwrap();
        // docs/ matches "all" (priority 1) and "docs" (priority 5), both to dst-a.
        let cands = candidates(src, "docs/readme.txt", Change::Created);
        assert!(!needs_tags(&candidates(
            src,
            "docs/readme.txt",
            Change::DeleteMarker
        )));
        assert_eq!(
            ids(&select(&cands, &[], Change::Created)),
            vec!["docs", "to-b"]
        );
        // The tag rule (priority 9) only wins with the tag.
        assert!(needs_tags(&cands));
        let secret = tags(&[("class", "secret")]);
        assert_eq!(
            ids(&select(&cands, &secret, Change::Created)),
            vec!["secret", "to-b"]
        );
        // Disabled rules never apply.
        assert!(!ids(&cands).contains(&"disabled".to_string()));
        // Other keys only get the catch-all rules.
        let img = candidates(src, "img/a.png", Change::Created);
        assert_eq!(
            ids(&select(&img, &[], Change::Created)),
            vec!["all", "to-b"]
        );
    }

    #[test]
    fn deletes_follow_each_destinations_mode() {
        let c = config();
        let src = c.source("src").unwrap();
        // Under docs/ the "docs" rule outranks "all" for dst-a and replicates no
        // deletes, so only "to-b" (every delete) acts; elsewhere "all" does markers.
        let markers = candidates(src, "docs/x", Change::DeleteMarker);
        assert_eq!(
            ids(&select(&markers, &[], Change::DeleteMarker)),
            vec!["to-b"]
        );
        let versions = candidates(src, "docs/x", Change::VersionDeleted);
        assert_eq!(
            ids(&select(&versions, &[], Change::VersionDeleted)),
            vec!["to-b"]
        );
        let img = candidates(src, "img/x", Change::DeleteMarker);
        assert_eq!(
            ids(&select(&img, &[], Change::DeleteMarker)),
            vec!["all", "to-b"]
        );
        let img = candidates(src, "img/x", Change::VersionDeleted);
        assert_eq!(
            ids(&select(&img, &[], Change::VersionDeleted)),
            vec!["to-b"]
        );
    }
}
