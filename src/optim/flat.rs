//! Flat parameter and gradient buffers. Each parameter tensor becomes a view into one
//! contiguous buffer, and so does its `.grad`, so an optimizer step is a handful of ops over
//! one buffer instead of a handful per parameter tensor (what dominates small-batch steps).

use anyhow::{bail, Result};
use tch::{Kind, Tensor};

pub struct FlatParams {
    vars: Vec<Tensor>,
    spans: Vec<(i64, i64)>,
    /// All parameters, concatenated; the variables are views into it.
    pub params: Tensor,
    /// All gradients, concatenated; each variable's `.grad` is a view into it.
    pub grads: Tensor,
    grad_ptrs: Vec<usize>,
}

impl FlatParams {
    /// Takes the trainable variables (all of one dtype and device) and rebinds them as views.
    pub fn new(vars: Vec<Tensor>) -> Result<Self> {
        let Some(first) = vars.first() else {
            bail!("the model has no trainable parameters");
        };
        let (kind, device) = (first.kind(), first.device());
        if vars
            .iter()
            .any(|v| v.kind() != kind || v.device() != device)
        {
            bail!("all parameters must share one dtype and device for the flat optimizer buffers");
        }
        let mut spans = vec![];
        let mut total = 0;
        for v in &vars {
            let n = v.numel() as i64;
            spans.push((total, n));
            total += n;
        }
        let params = Tensor::zeros([total], (kind, device));
        let grads = Tensor::zeros([total], (kind, device));
        let mut flat = FlatParams {
            vars,
            spans,
            params,
            grads,
            grad_ptrs: vec![],
        };
        flat.bind_params();
        flat.bind_grads();
        Ok(flat)
    }

    fn view(&self, buf: &Tensor, i: usize) -> Tensor {
        let (off, n) = self.spans[i];
        buf.narrow(0, off, n).view(self.vars[i].size().as_slice())
    }

    fn bind_params(&mut self) {
        tch::no_grad(|| {
            for i in 0..self.vars.len() {
                let view = self.view(&self.params, i);
                view.shallow_clone().copy_(&self.vars[i]);
                self.vars[i].set_data(&view);
            }
        });
    }

    /// Gives every variable a defined `.grad` (one throw-away backward) and rebinds it as a view
    /// of `grads`. Later backward passes then accumulate in place into the flat buffer.
    fn bind_grads(&mut self) {
        let undefined = self.vars.iter().any(|v| !v.grad().defined());
        if undefined {
            let probe = self
                .vars
                .iter()
                .map(|v| (v * 0.0).sum(Kind::Float))
                .reduce(|a, b| a + b)
                .expect("at least one variable");
            probe.backward();
        }
        self.grad_ptrs = (0..self.vars.len())
            .map(|i| {
                let view = self.view(&self.grads, i);
                let mut g = self.vars[i].grad();
                tch::no_grad(|| view.shallow_clone().copy_(&g));
                g.set_data(&view);
                view.data_ptr() as usize
            })
            .collect();
    }

    /// Checks that every `.grad` still lives in the flat buffer (a caller may have replaced one,
    /// e.g. by a create_graph backward); copies and rebinds any that moved. No kernels run when
    /// all are in place.
    pub fn ensure_bound(&mut self) {
        let moved = self
            .vars
            .iter()
            .zip(&self.grad_ptrs)
            .any(|(v, &p)| v.grad().data_ptr() as usize != p);
        if moved {
            self.bind_grads();
        }
    }

    pub fn zero_grad(&mut self) {
        let _ = self.grads.zero_();
    }

    pub fn numel(&self) -> i64 {
        self.params.size()[0]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn variables_and_grads_are_views_of_the_flat_buffers() {
        let a = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let b = Tensor::from_slice(&[3.0f32, 4.0, 5.0, 6.0])
            .view([2, 2])
            .set_requires_grad(true);
        let mut flat = FlatParams::new(vec![a.shallow_clone(), b.shallow_clone()]).unwrap();
        assert_eq!(
            Vec::<f32>::try_from(&flat.params).unwrap(),
            vec![1., 2., 3., 4., 5., 6.]
        );

        flat.zero_grad();
        let loss = |a: &Tensor, b: &Tensor| (a * 2.0).sum(Kind::Float) + (b * b).sum(Kind::Float);
        loss(&a, &b).backward();
        loss(&a, &b).backward();
        // Two backward passes accumulate into the flat buffer.
        assert_eq!(
            Vec::<f32>::try_from(&flat.grads).unwrap(),
            vec![4., 4., 12., 16., 20., 24.]
        );
        flat.ensure_bound();
        flat.zero_grad();
        assert_eq!(a.grad().abs().sum(Kind::Float).double_value(&[]), 0.0);

        // Updating the flat buffer updates the variables.
        let _ = tch::no_grad(|| flat.params.shallow_clone().fill_(7.0));
        assert_eq!(
            Vec::<f32>::try_from(&b.flatten(0, -1)).unwrap(),
            vec![7.0; 4]
        );
        assert!(FlatParams::new(vec![]).is_err());
        let c = Tensor::zeros([1], (Kind::Double, Device::Cpu)).set_requires_grad(true);
        assert!(FlatParams::new(vec![a, c]).is_err());
    }
}
