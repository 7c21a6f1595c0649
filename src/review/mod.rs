//! Human review of uncertain predictions. Label Studio is the external
//! review tool; everything that speaks HTTP to it lives in
//! [`label_studio`] (STYLE: no HTTP outside the client and `serve`).

pub mod label_studio;
