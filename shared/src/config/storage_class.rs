//! Storage class names: S3's own, and the looser form other providers' names take.

/// The classes S3 accepts on a write or reports on a read.
pub const AWS_STORAGE_CLASSES: &[&str] = &[
    "STANDARD",
    "REDUCED_REDUNDANCY",
    "STANDARD_IA",
    "ONEZONE_IA",
    "INTELLIGENT_TIERING",
    "GLACIER",
    "DEEP_ARCHIVE",
    "OUTPOSTS",
    "GLACIER_IR",
    "SNOW",
    "EXPRESS_ONEZONE",
    "FSX_OPENZFS",
    "FSX_ONTAP",
];

pub fn is_aws_storage_class(name: &str) -> bool {
    AWS_STORAGE_CLASSES.contains(&name)
}

/// Another provider's class (OVHcloud's "HIGH_PERF", say) only has to look like one.
pub fn is_storage_class_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// S3 leaves the class out of HEAD responses for STANDARD objects.
pub fn source_class(reported: Option<&str>) -> &str {
    reported.unwrap_or("STANDARD")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert!(is_aws_storage_class("GLACIER_IR"));
        assert!(!is_aws_storage_class("glacier"));
        assert!(is_storage_class_token("HIGH_PERF"));
        assert!(!is_storage_class_token("high perf"));
        assert!(!is_storage_class_token(""));
        assert_eq!(source_class(None), "STANDARD");
    }
}
