//! The phone library's own tests, with `curl` as an independent client.

mod contact;
