//! Where a region is: each region or geography name a provider uses (`eu-central-1`,
//! `europe-west4`, `swedencentral`, `eu`, `global`) and the jurisdictions it lies in, from the
//! most specific (`eu`, `uk`, `ch`, `us`, `jp`, …) to the broad geography (`europe`, `americas`,
//! `apac`, …). Policies allow regions by exact name, by jurisdiction, or by a `*` pattern.
//!
//! `eu` means the EU and EEA (where GDPR applies); the UK (`uk`) and Switzerland (`ch`) are
//! their own jurisdictions inside the `europe` geography. A region this table does not know gets
//! only the broad geography its name implies, or nothing, so a new region is never taken for a
//! stricter jurisdiction than it is known to be in.

/// Jurisdiction tags of a geography code, most specific first.
const GEOGRAPHIES: &[(&str, &[&str])] = &[
    ("global", &["global"]),
    ("eu", &["eu", "europe"]),
    ("uk", &["uk", "europe"]),
    ("ch", &["ch", "europe"]),
    ("europe", &["europe"]),
    ("us", &["us", "americas"]),
    ("ca", &["ca", "americas"]),
    ("br", &["br", "americas"]),
    ("mx", &["mx", "americas"]),
    ("cl", &["cl", "americas"]),
    ("americas", &["americas"]),
    ("jp", &["jp", "apac"]),
    ("au", &["au", "apac"]),
    ("in", &["in", "apac"]),
    ("kr", &["kr", "apac"]),
    ("sg", &["sg", "apac"]),
    ("hk", &["hk", "apac"]),
    ("tw", &["tw", "apac"]),
    ("id", &["id", "apac"]),
    ("my", &["my", "apac"]),
    ("th", &["th", "apac"]),
    ("apac", &["apac"]),
    ("il", &["il", "me"]),
    ("ae", &["ae", "me"]),
    ("bh", &["bh", "me"]),
    ("qa", &["qa", "me"]),
    ("sa", &["sa", "me"]),
    ("me", &["me"]),
    ("za", &["za", "africa"]),
    ("africa", &["africa"]),
];

/// Cloud regions (AWS, Google Cloud, Azure) and the geography code each lies in.
const REGIONS: &[(&str, &str)] = &[
    // AWS
    ("us-east-1", "us"),
    ("us-east-2", "us"),
    ("us-west-1", "us"),
    ("us-west-2", "us"),
    ("us-gov-east-1", "us"),
    ("us-gov-west-1", "us"),
    ("ca-central-1", "ca"),
    ("ca-west-1", "ca"),
    ("sa-east-1", "br"),
    ("mx-central-1", "mx"),
    ("eu-central-1", "eu"),
    ("eu-west-1", "eu"),
    ("eu-west-3", "eu"),
    ("eu-north-1", "eu"),
    ("eu-south-1", "eu"),
    ("eu-south-2", "eu"),
    ("eu-west-2", "uk"),
    ("eu-central-2", "ch"),
    ("ap-northeast-1", "jp"),
    ("ap-northeast-3", "jp"),
    ("ap-northeast-2", "kr"),
    ("ap-southeast-1", "sg"),
    ("ap-southeast-2", "au"),
    ("ap-southeast-4", "au"),
    ("ap-south-1", "in"),
    ("ap-south-2", "in"),
    ("ap-east-1", "hk"),
    ("ap-east-2", "tw"),
    ("ap-southeast-3", "id"),
    ("ap-southeast-5", "my"),
    ("ap-southeast-7", "th"),
    ("me-south-1", "bh"),
    ("me-central-1", "ae"),
    ("il-central-1", "il"),
    ("af-south-1", "za"),
    // Google Cloud
    ("europe-west1", "eu"),
    ("europe-west3", "eu"),
    ("europe-west4", "eu"),
    ("europe-west8", "eu"),
    ("europe-west9", "eu"),
    ("europe-west10", "eu"),
    ("europe-west12", "eu"),
    ("europe-north1", "eu"),
    ("europe-north2", "eu"),
    ("europe-central2", "eu"),
    ("europe-southwest1", "eu"),
    ("europe-west2", "uk"),
    ("europe-west6", "ch"),
    ("us-central1", "us"),
    ("us-east1", "us"),
    ("us-east4", "us"),
    ("us-east5", "us"),
    ("us-south1", "us"),
    ("us-west1", "us"),
    ("us-west2", "us"),
    ("us-west3", "us"),
    ("us-west4", "us"),
    ("northamerica-northeast1", "ca"),
    ("northamerica-northeast2", "ca"),
    ("northamerica-south1", "mx"),
    ("southamerica-east1", "br"),
    ("southamerica-west1", "cl"),
    ("asia-northeast1", "jp"),
    ("asia-northeast2", "jp"),
    ("asia-northeast3", "kr"),
    ("asia-southeast1", "sg"),
    ("asia-southeast2", "id"),
    ("asia-south1", "in"),
    ("asia-south2", "in"),
    ("asia-east1", "tw"),
    ("asia-east2", "hk"),
    ("australia-southeast1", "au"),
    ("australia-southeast2", "au"),
    ("me-west1", "il"),
    ("me-central1", "qa"),
    ("me-central2", "sa"),
    ("africa-south1", "za"),
    // Azure
    ("westeurope", "eu"),
    ("northeurope", "eu"),
    ("swedencentral", "eu"),
    ("francecentral", "eu"),
    ("germanywestcentral", "eu"),
    ("italynorth", "eu"),
    ("polandcentral", "eu"),
    ("spaincentral", "eu"),
    ("norwayeast", "eu"),
    ("uksouth", "uk"),
    ("ukwest", "uk"),
    ("switzerlandnorth", "ch"),
    ("switzerlandwest", "ch"),
    ("eastus", "us"),
    ("eastus2", "us"),
    ("westus", "us"),
    ("westus2", "us"),
    ("westus3", "us"),
    ("centralus", "us"),
    ("northcentralus", "us"),
    ("southcentralus", "us"),
    ("westcentralus", "us"),
    ("canadaeast", "ca"),
    ("canadacentral", "ca"),
    ("brazilsouth", "br"),
    ("japaneast", "jp"),
    ("japanwest", "jp"),
    ("australiaeast", "au"),
    ("australiasoutheast", "au"),
    ("koreacentral", "kr"),
    ("southeastasia", "sg"),
    ("eastasia", "hk"),
    ("centralindia", "in"),
    ("southindia", "in"),
    ("westindia", "in"),
    ("uaenorth", "ae"),
    ("southafricanorth", "za"),
];

/// For regions the table does not know: the broad geography their name implies.
const PREFIXES: &[(&str, &str)] = &[
    ("us-", "americas"),
    ("ca-", "americas"),
    ("sa-", "americas"),
    ("northamerica-", "americas"),
    ("southamerica-", "americas"),
    ("eu-", "europe"),
    ("europe-", "europe"),
    ("ap-", "apac"),
    ("asia-", "apac"),
    ("australia-", "apac"),
    ("me-", "me"),
    ("af-", "africa"),
    ("africa-", "africa"),
];

/// The jurisdictions `region` lies in, most specific first; empty when nothing is known.
pub fn jurisdictions(region: &str) -> &'static [&'static str] {
    let code = REGIONS
        .iter()
        .find(|(name, _)| *name == region)
        .map(|(_, code)| *code)
        .or_else(|| {
            GEOGRAPHIES
                .iter()
                .find(|(name, _)| *name == region)
                .map(|(name, _)| *name)
        })
        .or_else(|| {
            PREFIXES
                .iter()
                .find(|(prefix, _)| region.starts_with(prefix))
                .map(|(_, code)| *code)
        });
    code.and_then(|code| GEOGRAPHIES.iter().find(|(name, _)| *name == code))
        .map_or(&[], |(_, tags)| tags)
}

/// Whether `name` is a region or jurisdiction this table knows, for validating policies.
pub fn is_known(name: &str) -> bool {
    REGIONS.iter().any(|(r, _)| *r == name) || GEOGRAPHIES.iter().any(|(g, _)| *g == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_lie_in_their_jurisdictions() {
        assert_eq!(jurisdictions("eu-central-1"), ["eu", "europe"]);
        assert_eq!(jurisdictions("europe-west4"), ["eu", "europe"]);
        assert_eq!(jurisdictions("swedencentral"), ["eu", "europe"]);
        assert_eq!(jurisdictions("eu-west-2"), ["uk", "europe"]);
        assert_eq!(jurisdictions("us-east-1"), ["us", "americas"]);
        assert_eq!(jurisdictions("eu"), ["eu", "europe"]);
        assert_eq!(jurisdictions("global"), ["global"]);
    }

    #[test]
    fn unknown_regions_get_only_the_broad_geography_or_nothing() {
        assert_eq!(jurisdictions("eu-central-9"), ["europe"]);
        assert_eq!(jurisdictions("us-east-9"), ["americas"]);
        assert!(jurisdictions("mars-north1").is_empty());
        assert!(jurisdictions("").is_empty());
    }

    #[test]
    fn every_region_names_a_geography() {
        for (region, code) in REGIONS {
            assert!(
                GEOGRAPHIES.iter().any(|(g, _)| g == code),
                "{region} -> {code}"
            );
        }
    }
}
