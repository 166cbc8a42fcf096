//! Connector (being written).
