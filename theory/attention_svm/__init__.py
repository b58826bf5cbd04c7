"""Attention as a support vector machine: the analytic reference of the attention-SVM study family.

"Transformers as Support Vector Machines" and "Max-Margin Token Selection in Attention Mechanism"
(Tarzanagh, Li, Thrampoulidis, Oymak, 2023): gradient descent on a softmax-attention layer converges
in direction to a hard-margin SVM that separates the selected token of each input from the others.

- ``problems``:         Att-SVM (Frobenius, nuclear), p-SVM, v-SVM and the relaxed joint (v, p) problem.
- ``svm_equivalence``:  the multi-token predictor W^fin + R·W^dir for nonlinear heads.
- ``tokens``:           token scores, optimal and support tokens, local optimality, feasibility.
- ``kkt``:              a KKT certificate for a returned Att-SVM solution.
- ``agreement``:        two solvers' solutions compared, with bounds certified by weak duality.
"""

from .agreement import Agreement, compare
from .kkt import KKTCertificate, certify
from .problems import (
    InfeasibleSVMError,
    JointSVMSolution,
    SVMInputError,
    SVMSolution,
    correlation,
    numerical_rank,
    solve_att_svm,
    solve_joint_relaxed,
    solve_p_svm,
    solve_v_svm,
)
from .svm_equivalence import SVMEquivalence, svm_equivalence
from .tokens import (
    is_feasible,
    is_locally_optimal,
    optimal_tokens,
    support_inputs,
    support_tokens,
    token_scores,
)

__all__ = [
    "Agreement", "InfeasibleSVMError", "JointSVMSolution", "KKTCertificate", "SVMEquivalence", "SVMInputError", "SVMSolution",
    "certify", "compare", "correlation", "is_feasible", "is_locally_optimal", "numerical_rank", "optimal_tokens",
    "solve_att_svm", "solve_joint_relaxed", "solve_p_svm", "solve_v_svm", "support_inputs", "support_tokens", "svm_equivalence",
    "token_scores",
]
