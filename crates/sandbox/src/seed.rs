//! Deterministic demo people shared by every source simulator, so a demo shows the same customers
//! flowing from any source into the targets.

use chrono::{DateTime, Duration, TimeZone, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A person's email-marketing choice as a shop records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Marketing {
    Subscribed,
    NotSubscribed,
    Unsubscribed,
}

/// One demo customer, vendor-neutral; each simulator renders it in its own format.
#[derive(Debug, Clone)]
pub struct Person {
    pub index: usize,
    pub first_name: String,
    pub last_name: String,
    pub email: String,
    pub phone: String,
    pub city: String,
    pub region: String,
    pub zip: String,
    pub country: String,
    pub marketing: Marketing,
    pub tags: Vec<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

const FIRST: &[&str] = &[
    "Ava", "Liam", "Mia", "Noah", "Emma", "Lucas", "Sofia", "Oliver", "Elin", "Hugo", "Anna",
    "Ivan", "Maja", "Lars", "Chloe", "Mateo", "Ines", "Finn", "Zoe", "Omar",
];
const LAST: &[&str] = &[
    "Smith", "Jansen", "Berg", "Novak", "Garcia", "Kowalski", "Dubois", "Rossi", "Müller",
    "Petrov", "Nilsson", "Visser", "Silva", "Okafor", "Tanaka", "Murphy", "Larsen", "Costa",
    "Weber", "Ivanova",
];
const PLACES: &[(&str, &str, &str, &str)] = &[
    ("Amsterdam", "NH", "1012 AB", "NL"),
    ("Montréal", "QC", "H2X 1Y4", "CA"),
    ("Stockholm", "AB", "111 22", "SE"),
    ("Berlin", "BE", "10115", "DE"),
    ("Austin", "TX", "73301", "US"),
    ("Melbourne", "VIC", "3000", "AU"),
];
const DOMAINS: &[&str] = &[
    "maplemail.net",
    "northpost.io",
    "kiwimail.co.nz",
    "fjordmail.se",
];
const TAGS: &[&str] = &["vip", "wholesale", "newsletter", "loyalty"];

/// `count` demo people from `seed`; the same inputs always give the same people.
pub fn people(count: usize, seed: u64) -> Vec<Person> {
    let mut rng = StdRng::seed_from_u64(seed);
    let epoch = Utc
        .with_ymd_and_hms(2025, 1, 1, 9, 0, 0)
        .single()
        .expect("valid date");
    (0..count)
        .map(|index| {
            let first = FIRST[rng.random_range(0..FIRST.len())];
            let last = LAST[rng.random_range(0..LAST.len())];
            let (city, region, zip, country) = PLACES[rng.random_range(0..PLACES.len())];
            let domain = DOMAINS[rng.random_range(0..DOMAINS.len())];
            let marketing = match rng.random_range(0..10) {
                0..=5 => Marketing::Subscribed,
                6..=8 => Marketing::NotSubscribed,
                _ => Marketing::Unsubscribed,
            };
            let tags = TAGS
                .iter()
                .filter(|_| rng.random_range(0..5) == 0)
                .map(|t| t.to_string())
                .collect();
            let created_at = epoch + Duration::minutes(index as i64 * 7);
            let updated_at = created_at + Duration::hours(rng.random_range(0..2000));
            let ascii_last: String = last.chars().filter(|c| c.is_ascii_alphabetic()).collect();
            Person {
                index,
                first_name: first.to_string(),
                last_name: last.to_string(),
                email: format!(
                    "{}.{}{}@{}",
                    first.to_lowercase(),
                    ascii_last.to_lowercase(),
                    index,
                    domain
                ),
                phone: format!("+1555{:07}", index),
                city: city.to_string(),
                region: region.to_string(),
                zip: zip.to_string(),
                country: country.to_string(),
                marketing,
                tags,
                created_at,
                updated_at,
            }
        })
        .collect()
}
