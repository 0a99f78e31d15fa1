//! Uncertainty from stochastic latents: martingale-posterior neural processes (generated
//! pseudo-contexts as the source of functional uncertainty) and the latent-sampling
//! uncertainty of landmark models under image corruptions.

pub mod latent_uncertainty;
pub mod mpnp;
