//! The lecture notes' other generator families (issue #14), beside diffusion: Boltzmann
//! machines ([`boltzmann`]: the fully visible machine, the restricted one with CD-k / PCD,
//! replica exchange and annealed importance sampling) and variational autoencoders ([`vae`]:
//! the Gaussian VAE and a two-level hierarchical one, with ELBO and IWAE bounds). Host-side
//! training and likelihoods, in f64; randomness from the runtime's counter-based noise, so a
//! run is a pure function of its seed. [`command`] holds what their `microdiff` commands
//! share.

pub mod boltzmann;
pub mod command;
pub mod table;
pub mod vae;
