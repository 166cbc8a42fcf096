//! R-Series JSON as it arrives. The API renders XML into JSON, so:
//! - every scalar is a string (`"false"`, `"12"`): [`text`] and [`flag`] read strings, and also
//!   numbers and booleans in case a value does arrive typed;
//! - a repeated child is a list only when there are two or more. One child is a bare object and
//!   none is missing, `null` or `""`: [`one_or_many`] reads all of those as a `Vec`;
//! - an empty relation such as `"Emails"` is `""`: [`object_or_empty`] reads it as `None`.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};

/// One page of `GET Customer.json`.
#[derive(Debug, Deserialize)]
pub(super) struct Page {
    #[serde(rename = "@attributes")]
    pub attributes: Attributes,
    #[serde(rename = "Customer", default, deserialize_with = "one_or_many")]
    pub customers: Vec<Customer>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Attributes {
    /// The full URL of the next page, or empty on the last one.
    #[serde(default, deserialize_with = "text")]
    pub next: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct Customer {
    #[serde(rename = "customerID", deserialize_with = "text")]
    pub customer_id: String,
    #[serde(rename = "firstName", default, deserialize_with = "text")]
    pub first_name: String,
    #[serde(rename = "lastName", default, deserialize_with = "text")]
    pub last_name: String,
    #[serde(default, deserialize_with = "text")]
    pub company: String,
    /// A job title or honorific, as the merchant typed it.
    #[serde(default, deserialize_with = "text")]
    pub title: String,
    #[serde(default, deserialize_with = "text")]
    pub dob: String,
    #[serde(default, deserialize_with = "flag")]
    pub archived: bool,
    #[serde(rename = "timeStamp", default, deserialize_with = "text")]
    pub time_stamp: String,
    #[serde(rename = "Contact", default, deserialize_with = "object_or_empty")]
    pub contact: Option<Contact>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Contact {
    #[serde(rename = "Emails", default, deserialize_with = "object_or_empty")]
    pub emails: Option<Emails>,
    #[serde(rename = "Phones", default, deserialize_with = "object_or_empty")]
    pub phones: Option<Phones>,
    #[serde(rename = "Addresses", default, deserialize_with = "object_or_empty")]
    pub addresses: Option<Addresses>,
    #[serde(rename = "noEmail", default, deserialize_with = "flag")]
    pub no_email: bool,
    #[serde(rename = "timeStamp", default, deserialize_with = "text")]
    pub time_stamp: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Emails {
    #[serde(rename = "ContactEmail", default, deserialize_with = "one_or_many")]
    pub list: Vec<ContactEmail>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContactEmail {
    #[serde(default, deserialize_with = "text")]
    pub address: String,
    #[serde(rename = "useType", default, deserialize_with = "text")]
    pub use_type: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Phones {
    #[serde(rename = "ContactPhone", default, deserialize_with = "one_or_many")]
    pub list: Vec<ContactPhone>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContactPhone {
    #[serde(default, deserialize_with = "text")]
    pub number: String,
    #[serde(rename = "useType", default, deserialize_with = "text")]
    pub use_type: String,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct Addresses {
    #[serde(rename = "ContactAddress", default, deserialize_with = "one_or_many")]
    pub list: Vec<ContactAddress>,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct ContactAddress {
    #[serde(default, deserialize_with = "text")]
    pub address1: String,
    #[serde(default, deserialize_with = "text")]
    pub address2: String,
    #[serde(default, deserialize_with = "text")]
    pub city: String,
    #[serde(default, deserialize_with = "text")]
    pub state: String,
    #[serde(default, deserialize_with = "text")]
    pub zip: String,
    #[serde(default, deserialize_with = "text")]
    pub country: String,
    #[serde(rename = "countryCode", default, deserialize_with = "text")]
    pub country_code: String,
}

/// A list of `T` from a list, a single object, or nothing (`null`, `""`).
pub(super) fn one_or_many<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct OneOrMany<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrMany<T> {
        type Value = Vec<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object, a list of objects, or an empty string")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Vec<T>, A::Error> {
            Vec::deserialize(SeqAccessDeserializer::new(seq))
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Vec<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(|one| vec![one])
        }

        fn visit_unit<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<Vec<T>, E> {
            Ok(Vec::new())
        }

        fn visit_some<D2: Deserializer<'de>>(self, inner: D2) -> Result<Vec<T>, D2::Error> {
            inner.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Vec<T>, E> {
            if value.trim().is_empty() {
                Ok(Vec::new())
            } else {
                Err(E::invalid_value(de::Unexpected::Str(value), &self))
            }
        }
    }

    deserializer.deserialize_any(OneOrMany(PhantomData))
}

/// An object, or `None` for `""` and `null` (an empty relation).
pub(super) fn object_or_empty<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    struct ObjectOrEmpty<T>(PhantomData<T>);

    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectOrEmpty<T> {
        type Value = Option<T>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an object or an empty string")
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_none<E: de::Error>(self) -> Result<Option<T>, E> {
            Ok(None)
        }

        fn visit_some<D2: Deserializer<'de>>(self, inner: D2) -> Result<Option<T>, D2::Error> {
            inner.deserialize_any(self)
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<Option<T>, E> {
            if value.trim().is_empty() {
                Ok(None)
            } else {
                Err(E::invalid_value(de::Unexpected::Str(value), &self))
            }
        }
    }

    deserializer.deserialize_any(ObjectOrEmpty(PhantomData))
}

/// A scalar as text: strings as they are (trimmed), numbers and booleans printed, `null` empty.
pub(super) fn text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct Text;

    impl Visitor<'_> for Text {
        type Value = String;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<String, E> {
            Ok(value.trim().to_string())
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<String, E> {
            Ok(value.to_string())
        }

        fn visit_unit<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }

        fn visit_none<E: de::Error>(self) -> Result<String, E> {
            Ok(String::new())
        }
    }

    deserializer.deserialize_any(Text)
}

/// A boolean from `"true"`/`"false"` (also `"1"`/`"0"`, a real boolean, `""` and `null` as false).
pub(super) fn flag<'de, D: Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    struct Flag;

    impl Visitor<'_> for Flag {
        type Value = bool;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("\"true\" or \"false\"")
        }

        fn visit_str<E: de::Error>(self, value: &str) -> Result<bool, E> {
            match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" => Ok(true),
                "false" | "0" | "" => Ok(false),
                _ => Err(E::invalid_value(de::Unexpected::Str(value), &self)),
            }
        }

        fn visit_bool<E: de::Error>(self, value: bool) -> Result<bool, E> {
            Ok(value)
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<bool, E> {
            match value {
                0 => Ok(false),
                1 => Ok(true),
                _ => Err(E::invalid_value(de::Unexpected::Unsigned(value), &self)),
            }
        }

        fn visit_unit<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }

        fn visit_none<E: de::Error>(self) -> Result<bool, E> {
            Ok(false)
        }
    }

    deserializer.deserialize_any(Flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_customer_and_single_email_are_objects() {
        let page: Page = serde_json::from_str(
            r#"{"@attributes":{"next":"","previous":""},
                "Customer":{"customerID":"7","firstName":"Ann","archived":"false",
                  "timeStamp":"2025-03-01T10:00:00+00:00",
                  "Contact":{"noEmail":"true","Emails":{"ContactEmail":{"address":"a@b.co","useType":"Primary"}},
                             "Phones":"","Addresses":{"ContactAddress":[{"city":"X"},{"city":"Y"}]}}}}"#,
        )
        .unwrap();
        assert_eq!(page.customers.len(), 1);
        let customer = &page.customers[0];
        assert_eq!(customer.customer_id, "7");
        assert!(!customer.archived);
        let contact = customer.contact.as_ref().unwrap();
        assert!(contact.no_email);
        assert_eq!(contact.emails.as_ref().unwrap().list[0].address, "a@b.co");
        assert!(contact.phones.is_none());
        assert_eq!(contact.addresses.as_ref().unwrap().list.len(), 2);
    }

    #[test]
    fn no_customer_key_empty_string_and_typed_values_are_accepted() {
        let page: Page = serde_json::from_str(r#"{"@attributes":{"next":""}}"#).unwrap();
        assert!(page.customers.is_empty());
        let page: Page =
            serde_json::from_str(r#"{"@attributes":{"next":""},"Customer":""}"#).unwrap();
        assert!(page.customers.is_empty());
        let page: Page = serde_json::from_str(
            r#"{"@attributes":{"next":null},"Customer":[{"customerID":12,"archived":true},{"customerID":"13","archived":"1"}]}"#,
        )
        .unwrap();
        assert_eq!(page.customers[0].customer_id, "12");
        assert!(page.customers[0].archived && page.customers[1].archived);
    }

    #[test]
    fn nonsense_is_an_error_not_a_default() {
        assert!(serde_json::from_str::<Page>(r#"{"Customer":[]}"#).is_err());
        assert!(
            serde_json::from_str::<Page>(
                r#"{"@attributes":{},"Customer":{"customerID":"1","archived":"maybe"}}"#
            )
            .is_err()
        );
        assert!(
            serde_json::from_str::<Page>(r#"{"@attributes":{},"Customer":"not a customer"}"#)
                .is_err()
        );
    }
}
