//! Black-box tests through the real HTTP server, one binary.

mod chatdash;
mod clients;
mod clockify;
mod helpers;
mod lucca;
mod missionx;
mod plusvibe;
mod problems;
mod robustness;
mod sandbox;
