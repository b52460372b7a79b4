# attack: legitimate: many torch operations an honest reward may use (special functions, linear algebra,
#   sorting, losses, lists turned into tensors, float64); they must work in the jail's empty root
# expect: ok
# cause: 
import math
import torch
import torch.nn.functional as F


def compute_reward(s):
    x = torch.cat([s.qpos, s.qvel], dim=-1)
    v = s.qvel
    parts = {
        "expit": torch.special.expit(x).sum(-1),
        "erf": torch.erf(x).sum(-1),
        "cos_sim": F.cosine_similarity(x, x + 1.0, dim=-1),
        "cdist": torch.cdist(x[:, None, :], x[:, None, :] + 1.0)[:, 0, 0],
        "quantile": torch.quantile(x, 0.5, dim=-1),
        "logsumexp": torch.logsumexp(x, dim=-1),
        "normalize": F.normalize(v, dim=-1).sum(-1),
        "sort": torch.sort(x, dim=-1).values[:, 0] + torch.topk(x, 2, dim=-1).values[:, 0],
        "cumsum": torch.cumsum(x, dim=-1)[:, -1] + torch.diff(x, dim=-1).sum(-1),
        "fmod": torch.fmod(x, 2.0).sum(-1) + torch.remainder(x, 2.0).sum(-1),
        "tensor": torch.tensor([1.0, 2.0]).sum() + torch.as_tensor([0.5]).sum() + torch.linspace(0, 1, 3).sum() + 0 * x[:, 0],
        "float64": x.to(torch.float64).sum(-1).float() + x.double().mean(-1).float(),
        "bucketize": torch.bucketize(x[:, 0].contiguous(), torch.tensor([-1.0, 0.0, 1.0])).float(),
        "clip": torch.clip(x, -1, 1).sum(-1) + torch.norm(x, p=2, dim=-1) + torch.linalg.norm(x, ord=1, dim=-1),
        "mse": F.mse_loss(x, torch.zeros_like(x), reduction="none").sum(-1) + F.smooth_l1_loss(x, x * 0.5, reduction="none").sum(-1),
        "gelu": F.gelu(x).sum(-1) + F.elu(x).sum(-1) + F.leaky_relu(x).sum(-1) + F.softmax(x, dim=-1)[:, 0],
        "quat": torch.acos(torch.clamp(s.body_quat[next(iter(s.body_quat))][:, 0], -1, 1)) + torch.asin(torch.clamp(x[:, 0], -1, 1)),
        "hypot": torch.hypot(x[:, 0], x[:, 1]) + torch.rad2deg(x[:, 0]) * math.pi / 180 + torch.exp2(x[:, 0].clamp(max=5)),
        "bool": (x > 0).float().mean(-1) + (x > 0).any(-1).float() + torch.logical_and(x > 0, x < 1).float().sum(-1),
        "inv": torch.linalg.inv(torch.eye(3).expand(x.shape[0], 3, 3) * 2.0)[:, 0, 0] + torch.det(torch.eye(2).expand(x.shape[0], 2, 2)),
        "cross": torch.linalg.cross(s.com_vel, s.com_pos, dim=-1).sum(-1) + torch.outer(x[0], x[0]).sum() * 0,
    }
    total = sum(parts.values())
    return total, parts
