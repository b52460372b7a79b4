"""What a reward may reach: the allowlist the static validator checks and the jail's ``torch`` is made of.

A reward starts from ``s`` (the State), ``torch``, ``math``, safe builtins and literals, and reaches
everything else through attribute names. The validator (``rewardgen.sandbox.validate``) accepts an
attribute only when its name is listed here (or is an attribute of the reward's own class, read
through ``self``), whatever object it is read on: so the list must be safe on every object a reward
can hold. What is listed, by group:

- ``TORCH``: functions, dtypes and constants of ``torch`` (arithmetic, reductions, shapes, creation,
  comparisons, linear algebra), and the namespaces ``nn`` (``functional`` only), ``linalg`` and
  ``special``, with ``FUNCTIONAL``, ``LINALG`` and ``SPECIAL``;
- ``TENSOR``: tensor methods and properties (no ``numpy``, ``storage``, ``data_ptr``, hooks, ``grad_fn``,
  and nothing that hands out uninitialised memory: no ``empty``);
- ``STATE``: the State's fields and the read-only mapping of its named fields;
- ``PYTHON``: methods of dicts, lists, tuples, strings, numbers, ``torch.finfo``, return-type fields;
- ``math``'s public names.

No name here reaches a module other than those four namespaces and ``math``, a file, a process or
an interpreter object (``tests/test_sandbox.py`` checks each name on every kind of object it can be
read on). In the jail the reward's ``torch`` is ``reward_torch()``: module objects holding only the
listed names, so no real submodule of torch is reachable from it either. For the exported file,
which runs the reward with the real torch, this list (through the validator) is the only guard.
"""

from __future__ import annotations

import math
import types
from typing import Any

#: modules a reward may import (``import torch.nn.functional as F``, ``from torch import linalg``)
MODULES = frozenset({"torch", "torch.nn", "torch.nn.functional", "torch.linalg", "torch.special", "math"})
#: torch's namespaces that a reward may reach, and the names each may hold
NAMESPACES = ("nn", "functional", "linalg", "special")

_ELEMENTWISE = """
abs absolute acos arccos acosh arccosh asin arcsin asinh arcsinh atan arctan atan2 arctan2 atanh arctanh
ceil floor round trunc frac fix clamp clip clamp_min clamp_max cos cosh sin sinh tan tanh exp exp2 expm1
log log2 log10 log1p logaddexp logaddexp2 sqrt rsqrt square pow float_power sigmoid sign sgn signbit erf
erfc erfinv lgamma digamma hypot fmod remainder reciprocal neg negative positive add sub subtract mul
multiply div divide true_divide floor_divide maximum minimum fmax fmin deg2rad rad2deg lerp nan_to_num
heaviside copysign xlogy sinc logit relu softmax log_softmax nextafter ldexp frexp i0 polygamma mvlgamma
bitwise_and bitwise_or bitwise_xor bitwise_not eq ne lt le gt ge greater greater_equal less less_equal
not_equal isclose isfinite isnan isinf isposinf isneginf isreal logical_and logical_or logical_not
logical_xor where
"""
_REDUCTIONS = """
sum mean prod std var std_mean var_mean max min amax amin aminmax argmax argmin median nanmedian mode norm
logsumexp cumsum cumprod cummax cummin logcumsumexp all any count_nonzero nansum nanmean quantile nanquantile
dist cdist diff trapz trapezoid cumulative_trapezoid equal allclose
"""
_SHAPES = """
cat concat concatenate stack hstack vstack dstack column_stack reshape flatten unflatten squeeze unsqueeze
transpose permute movedim moveaxis swapaxes swapdims narrow select index_select masked_select gather take
take_along_dim split tensor_split chunk unbind roll flip fliplr flipud rot90 broadcast_to broadcast_tensors
tile repeat_interleave diagonal diag diag_embed diagflat tril triu meshgrid atleast_1d atleast_2d
atleast_3d cartesian_prod combinations scatter scatter_add index_add index_fill masked_fill clone
"""
_CREATION = """
tensor as_tensor zeros ones full zeros_like ones_like full_like arange linspace logspace
eye rand randn rand_like randn_like randint normal
"""
_ALGEBRA = """
matmul mm bmm mv dot vdot outer inner einsum tensordot cross det inverse trace kron cholesky
sort argsort msort topk kthvalue searchsorted bucketize unique unique_consecutive nonzero histc
"""
_TYPES = """
float32 float64 float16 bfloat16 int8 int16 int32 int64 uint8 bool float double half long int short
cfloat complex64 complex128 pi e inf nan Tensor Size dtype device finfo iinfo no_grad is_tensor
is_floating_point numel result_type promote_types can_cast get_default_dtype
"""


def _words(*groups: str) -> frozenset[str]:
    return frozenset(w for g in groups for w in g.split())


TORCH = _words(_ELEMENTWISE, _REDUCTIONS, _SHAPES, _CREATION, _ALGEBRA, _TYPES) | frozenset(NAMESPACES[0:1]) \
    | frozenset({"linalg", "special"})

FUNCTIONAL = _words("""
relu relu6 elu selu celu gelu silu mish softplus softsign softmax log_softmax softmin sigmoid tanh tanhshrink
hardtanh hardsigmoid hardswish leaky_relu logsigmoid normalize cosine_similarity pairwise_distance pdist
mse_loss l1_loss smooth_l1_loss huber_loss one_hot pad threshold softshrink hardshrink linear
binary_cross_entropy binary_cross_entropy_with_logits kl_div cross_entropy nll_loss glu
""")
LINALG = _words("""
norm vector_norm matrix_norm det inv pinv solve cross eig eigh eigvals eigvalsh svd svdvals qr cholesky
matrix_rank matrix_power matrix_exp vecdot multi_dot diagonal slogdet lstsq cond
""")
SPECIAL = _words("""
expit logit erf erfc erfinv erfcx xlogy xlog1py entr log_softmax softmax logsumexp sinc round exp2 expm1 log1p
i0 i0e i1 i1e ndtr ndtri log_ndtr gammaln digamma psi polygamma multigammaln zeta
""")

TENSOR = _words(_ELEMENTWISE, _REDUCTIONS, _SHAPES, """
view view_as reshape_as expand expand_as repeat t T mT H mH contiguous detach clone to float double half
int long bool short type_as item tolist numel dim ndim ndimension size shape dtype device is_floating_point
is_complex nelement element_size new_zeros new_ones new_full new_tensor abs_ add_ sub_ mul_ div_
pow_ clamp_ clip_ fill_ zero_ neg_ exp_ sqrt_ masked_fill_ index_fill_ scatter_ scatter_add_ index_add_
copy_ lerp_ sign_ tanh_ sigmoid_ relu_ floor_ ceil_ round_ trunc_ where matmul dot norm sort argsort topk
max min values indices mean sum std var unfold sum_to_size squeeze_ unsqueeze_ t_ transpose_ fmod_
remainder_ nan_to_num_ is_contiguous real imag is_leaf requires_grad
""")

STATE = _words("""
qpos qvel action ctrl dt step body_pos body_quat body_linvel body_angvel body_up joint_pos joint_vel
site_pos com_pos com_vel contact_force num_worlds keys values items get stacked
""")

PYTHON = _words("""
append extend insert pop remove index count sort reverse copy clear update setdefault items keys values get
join startswith endswith lower upper strip lstrip rstrip split rsplit replace format zfill ljust rjust center
is_integer conjugate bit_length real imag numerator denominator as_integer_ratio add discard union
intersection difference issubset issuperset start stop eps tiny resolution bits smallest_normal max min
is_signed itemsize type indices values eigenvalues eigenvectors U S Vh Q R L sign logabsdet solution
residuals rank singular_values mean
""")

MATH = frozenset(n for n in dir(math) if not n.startswith("_"))

#: every attribute name a reward may read, on any object
ATTRIBUTES = TORCH | FUNCTIONAL | LINALG | SPECIAL | TENSOR | STATE | PYTHON | MATH | frozenset(NAMESPACES)

#: what each torch namespace of ``reward_torch`` holds
NAMESPACE_NAMES = {"torch": TORCH, "torch.nn": frozenset({"functional"}), "torch.nn.functional": FUNCTIONAL,
                   "torch.linalg": LINALG, "torch.special": SPECIAL}


def reward_torch() -> types.ModuleType:
    """The reward's ``torch``: module objects holding only the listed names of the real torch (and its
    ``nn.functional``, ``linalg``, ``special``), so no real submodule is reachable from it. Rebinding a
    name on it (``torch.exp = ...``) cannot reach the trusted code's torch."""
    import torch

    def namespace(dotted: str, real: Any) -> types.ModuleType:
        mod = types.ModuleType(dotted, getattr(real, "__doc__", None))
        for name in NAMESPACE_NAMES[dotted]:
            child = f"{dotted}.{name}"
            if child in NAMESPACE_NAMES:
                mod.__dict__[name] = namespace(child, getattr(real, name))
            elif hasattr(real, name) and not isinstance(getattr(real, name), types.ModuleType):
                mod.__dict__[name] = getattr(real, name)
        return mod

    return namespace("torch", torch)


def reachable_names() -> frozenset[str]:
    """Every attribute name (dunders aside) carried by an object a reward can hold: a name of the
    reward's own that is one of these could, read through ``self`` bound to such an object, reach it.
    (Imports torch: called only for rewards that define classes.)"""
    import torch
    import torch.nn.functional

    objects: list[Any] = [torch, torch.nn, torch.nn.functional, torch.linalg, torch.special, math, torch.zeros(1),
                          torch.float32, torch.device("cpu"), torch.Size([1]), torch.finfo(torch.float32),
                          torch.max(torch.zeros(1, 1), 1), torch.Tensor, {}, [], (), "", 0, 0.0, 1j, set(), range(1),
                          slice(1), (lambda: 0), len, (x for x in [0]), [].append, type("C", (), {})]
    names: set[str] = set()
    for obj in objects:
        names.update(n for n in dir(obj) if not (n.startswith("__") and n.endswith("__")))
    return frozenset(names)
