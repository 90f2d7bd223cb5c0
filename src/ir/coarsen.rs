//! The block reductions of `x.coarsen(factors, reduce=...)` (`Op::Coarsen`).

/// How `Op::Coarsen` reduces each block of `factors` elements to one output element.
#[derive(serde::Serialize, serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CoarsenMethod {
    /// Arithmetic mean (`np.mean`): f64 for bool and integers, the float dtype otherwise.
    Mean,
    /// Sum (`np.sum`): int64 for bool and signed, uint64 for unsigned integers.
    Sum,
    /// Minimum (`np.min`, NaN propagates).
    Min,
    /// Maximum (`np.max`, NaN propagates).
    Max,
    /// Median (`np.median`): f64 for bool and integers, NaN propagates.
    Median,
    /// Most frequent value, ties to the smallest (`scipy.stats.mode`); integers and bool.
    Mode,
    /// The block's first element (`x[::f0, ::f1, ...]`).
    Nearest,
}

impl CoarsenMethod {
    pub const ALL: [CoarsenMethod; 7] = [
        CoarsenMethod::Mean,
        CoarsenMethod::Sum,
        CoarsenMethod::Min,
        CoarsenMethod::Max,
        CoarsenMethod::Median,
        CoarsenMethod::Mode,
        CoarsenMethod::Nearest,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CoarsenMethod::Mean => "mean",
            CoarsenMethod::Sum => "sum",
            CoarsenMethod::Min => "min",
            CoarsenMethod::Max => "max",
            CoarsenMethod::Median => "median",
            CoarsenMethod::Mode => "mode",
            CoarsenMethod::Nearest => "nearest",
        }
    }

    pub fn parse(name: &str) -> Option<CoarsenMethod> {
        CoarsenMethod::ALL
            .iter()
            .copied()
            .find(|m| m.name() == name)
    }

    /// Output elements are input elements (no arithmetic): label images keep their values.
    pub fn picks(self) -> bool {
        matches!(
            self,
            CoarsenMethod::Min | CoarsenMethod::Max | CoarsenMethod::Mode | CoarsenMethod::Nearest
        )
    }
}
