"""MaskablePPO held near the policy it was warm-started from, by a KL phase after each update.

Fine-tuning a cloned team with PPO either barely moves (a tiny learning rate) or drifts below
the team it cloned before it finds anything better (a larger one); the remedy the kickstarting
and behaviour-regularised RL literature use is a KL term towards the teacher. Here, after
every PPO update, one pass over the update's observations minimises
``teacher_kl_coeff * KL(teacher || policy)`` over the allowed actions, where the teacher is a
frozen copy of the policy right after cloning: an auxiliary phase in the manner of Phasic
Policy Gradient's, which leaves SB3's own PPO loss untouched. The teacher's weights travel
with the checkpoints, so a resumed run keeps its anchor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from sb3_contrib import MaskablePPO

TEACHER_FILE = "teacher.safetensors"


class TeacherKLMaskablePPO(MaskablePPO):
    """MaskablePPO with a KL phase towards :attr:`teacher` after each update.

    Set :attr:`teacher` (with :meth:`freeze_teacher`) and :attr:`teacher_kl_coeff` after
    construction or loading; without a teacher it is plain MaskablePPO.
    """

    teacher: Any = None
    teacher_kl_coeff: float = 0.0
    last_teacher_kl: float = float("nan")

    def freeze_teacher(self) -> None:
        """The current policy becomes the teacher (call right after the warm start)."""
        # A fresh policy of the same class loaded with today's weights (the policy holds
        # non-leaf tensors after training, which deepcopy refuses).
        teacher = self.policy_class(
            self.observation_space, self.action_space, self.lr_schedule, **self.policy_kwargs
        )
        teacher.load_state_dict(self.policy.state_dict())
        self.teacher = teacher
        self.teacher.set_training_mode(False)
        for parameter in self.teacher.parameters():
            parameter.requires_grad_(False)

    def save_teacher(self, folder: Path) -> None:
        """Write the teacher's weights beside a checkpoint (safetensors, no pickle)."""
        from safetensors.torch import save_file

        if self.teacher is not None:
            state = {k: v.contiguous() for k, v in self.teacher.state_dict().items()}
            save_file(state, folder / TEACHER_FILE)

    def load_teacher(self, folder: Path) -> None:
        """Read the teacher saved beside a checkpoint, when there is one."""
        from safetensors.torch import load_file

        if (folder / TEACHER_FILE).exists():
            self.freeze_teacher()
            self.teacher.load_state_dict(load_file(folder / TEACHER_FILE))

    def train(self) -> None:
        """PPO's update, then the KL phase over the same observations."""
        super().train()
        if self.teacher is None or self.teacher_kl_coeff <= 0:
            return
        self.policy.set_training_mode(True)
        divergences = []
        for rollout in self.rollout_buffer.get(self.batch_size):
            masks = torch.as_tensor(rollout.action_masks).reshape(len(rollout.actions), -1) > 0
            with torch.no_grad():
                teacher = _log_probs(self.teacher, rollout.observations, masks)
            policy = _log_probs(self.policy, rollout.observations, masks)
            # KL(teacher || policy) over allowed actions; forbidden ones have p = 0 in both.
            kl = (teacher.exp() * (teacher - policy)).where(masks, 0.0).sum(dim=1).mean()
            self.policy.optimizer.zero_grad()
            (self.teacher_kl_coeff * kl).backward()
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.max_grad_norm)
            self.policy.optimizer.step()
            divergences.append(float(kl.detach()))
        self.last_teacher_kl = sum(divergences) / len(divergences)


def _log_probs(policy: Any, observations: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    features = policy.extract_features(observations, policy.pi_features_extractor)
    logits = policy.action_net(policy.mlp_extractor.forward_actor(features))
    return torch.log_softmax(logits.masked_fill(~masks, -1e8), dim=1)
