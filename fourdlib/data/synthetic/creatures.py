"""Procedural skinned creatures, like DeformingThings4D at object level.

An *individual* is a body plan (quadruped, biped, hexapod, snake, bird, fish) plus a seed
that draws its proportions (limb lengths, thickness, neck, tail, wing span, overall size
0.5-1.5 m). Its body is a union of ellipsoids and capsules around the bones of a skeleton
(a joint hierarchy in a rest pose), merged into one triangle mesh; each vertex is bound to
its nearest bones by smooth skin weights, and the mesh is posed by linear blend skinning:

    v_t = sum_j w_j A_j(t) v_rest,   A_j(t) = G_j(t) G_j(rest)^-1,

where G_j(t) is joint j's world transform from forward kinematics of procedural joint
angles (functions of time, one set per *motion*: walk, run, jump, turn, wag, look) on top
of a root motion (travel, turning, leaping). A motion instance is (motion name, seed): the
seed draws its frequency, amplitude, turn direction, jump height.

Splits as in the DynaTok table (`creature_split_plan`): "train" holds (individual, motion)
pairs; "unseen_motion" gives seen individuals motions they never perform in train;
"unseen_individual" gives held-out individuals (new proportions, seen body plans) motions
that occur in train.

Conventions: metres, +z up, creatures face +x with their lowest point on z = 0 at rest.
"""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np
from scipy.spatial.transform import Rotation

from ..capture import capture
from ..sequence import Sequence4D
from .camera import CameraSpec, camera_path
from .primitives import LICENCE, Part, _check_common, make_part, merge_parts, smoothstep

BODY_PLANS = ("quadruped", "biped", "hexapod", "snake", "bird", "fish")
MOTIONS = ("walk", "run", "jump", "turn", "wag", "look")
SIZE_RANGE = (0.5, 1.5)  # longest extent of a creature at rest, metres


# ----------------------------------------------------------------------------- skeleton
@dataclass
class Skeleton:
    """A joint hierarchy in its rest pose.

    names   J joint names.
    parents (J,) int parent index, -1 for the root; parents[j] < j (topological order).
    rest    (J, 3) joint positions at rest, creature coordinates. Joint frames are aligned
            with the creature's axes at rest (x forward, y left, z up), so a joint's local
            rotation is yaw about z, pitch about y, roll about x.
    info    per joint: {"role": spine|neck|head|tail|leg|arm|wing|fin|antenna|body, ...}
            with role data: side (+1 left, -1 right), level (0 next to the body), s (0..1
            along a chain), walk_phase / run_phase (gait phase in cycles), knee (bend sign).
    """

    names: list[str]
    parents: np.ndarray
    rest: np.ndarray
    info: list[dict]

    def __len__(self) -> int:
        return len(self.names)


def forward_kinematics(skeleton: Skeleton, euler, root):
    """Skinning transforms A (T, J, 4, 4) that take rest-pose points to the posed frame.

    euler (T, J, 3) local (yaw, pitch, roll) radians per joint, applied as Rz @ Ry @ Rx;
    root (T, 4, 4) rigid motion of the whole creature. A_j = G_j(t) @ G_j(rest)^-1 where
    G_j(rest) is the translation to rest[j] (joint frames are axis-aligned at rest).
    """
    euler = np.asarray(euler, np.float64)
    T, J = euler.shape[:2]
    if J != len(skeleton):
        raise ValueError(f"forward_kinematics: euler has {J} joints, skeleton has {len(skeleton)}")
    R = Rotation.from_euler("ZYX", euler.reshape(-1, 3)).as_matrix().reshape(T, J, 3, 3)
    G = np.zeros((T, J, 4, 4))
    for j in range(J):                                              # loop over joints, not points
        p = skeleton.parents[j]
        local = np.zeros((T, 4, 4))
        local[:, :3, :3] = R[:, j]
        local[:, :3, 3] = skeleton.rest[j] - (skeleton.rest[p] if p >= 0 else 0)
        local[:, 3, 3] = 1
        G[:, j] = (G[:, p] if p >= 0 else root) @ local
    A = G.copy()
    A[..., :3, 3] -= np.einsum("tjab,jb->tja", G[..., :3, :3], skeleton.rest)
    return A


def linear_blend_skinning(rest_vertices, weights, A):
    """Posed vertices (T, Nv, 3) from rest vertices (Nv, 3), weights (Nv, J), transforms A (T, J, 4, 4)."""
    M = np.einsum("vj,tjab->tvab", weights, A[:, :, :3, :])        # (T, Nv, 3, 4) blended transforms
    return np.einsum("tvab,vb->tva", M[..., :3], rest_vertices) + M[..., 3]


def skin_weights(vertices, parts: list[Part], part_joint, num_joints: int, k: int = 4,
                 power: float = 8.0):
    """Smooth skin weights (Nv, J): w_j ~ level_j^-power over the k nearest bones, normalised.

    level_j is the analytic level of joint j's parts (1 on their surface, growing with
    distance in units of the part's radius), so a vertex follows its own part and blends
    smoothly with the neighbouring bone where two parts meet.
    """
    level = np.full((len(vertices), num_joints), np.inf)
    for p, j in zip(parts, part_joint):
        level[:, j] = np.minimum(level[:, j], p.level(vertices))
    w = np.maximum(level, 1e-3) ** -power                           # inf -> 0 for joints without parts
    k = min(k, num_joints)
    drop = np.argpartition(-w, k - 1, axis=1)[:, k:]                # all but the k largest
    np.put_along_axis(w, drop, 0.0, axis=1)
    return w / w.sum(1, keepdims=True)


# --------------------------------------------------------------------------- body plans
def _frame(d, up=(0.0, 0.0, 1.0)):
    """Rotation (3, 3) whose x axis is d and whose z axis is `up` made orthogonal to d."""
    x = np.asarray(d, np.float64) / np.linalg.norm(d)
    z = np.asarray(up, np.float64) - np.dot(up, x) * x
    if np.linalg.norm(z) < 1e-6:                                    # d is vertical: z = forward
        z = np.array([1.0, 0, 0]) - x[0] * x
    z /= np.linalg.norm(z)
    return np.stack([x, np.cross(z, x), z], 1)


class _Body:
    """Collects joints and part specs while a body plan is built, at an arbitrary scale."""

    def __init__(self):
        self.names, self.parents, self.rest, self.info, self.specs = [], [], [], [], []

    def joint(self, name, parent, pos, role, **info) -> int:
        self.names.append(name)
        self.parents.append(-1 if parent is None else parent)
        self.rest.append(np.asarray(pos, np.float64))
        self.info.append(dict(role=role, **info))
        return len(self.names) - 1

    def capsule(self, joint, a, b, r, color):
        self.specs.append(("capsule", joint, np.asarray(a, float), np.asarray(b, float), (r, r), color, 1.0))

    def ellipsoid(self, joint, a, b, radii, color, stretch=1.0):
        """Ellipsoid along segment a-b: semi-axis |b-a|/2*stretch along it, radii = (sideways, up)."""
        self.specs.append(("ellipsoid", joint, np.asarray(a, float), np.asarray(b, float), radii, color, stretch))

    def build(self, size: float, detail: int = 0):
        """Parts and skeleton scaled so that the longest rest extent is `size` metres,
        standing on z = 0, centred in x and y."""
        parts = []
        for kind, j, a, b, radii, color, stretch in self.specs:
            d = b - a
            half = np.linalg.norm(d) / 2
            R = _frame(d if half > 1e-9 else [1.0, 0, 0])
            pose = np.eye(4)
            pose[:3, 3] = (a + b) / 2
            radii = np.asarray(radii, np.float64)
            if kind == "capsule":                                    # trimesh capsules lie along z
                pose[:3, :3] = R[:, [1, 2, 0]]
                parts.append(make_part("capsule", [max(half, 1e-4), radii[0]], pose, color, detail))
            else:
                pose[:3, :3] = R
                parts.append(make_part("ellipsoid", [max(half * stretch, radii.min() * 0.5), *radii],
                                       pose, color, detail))
        lo = np.min([p.vertices.min(0) for p in parts], 0)
        hi = np.max([p.vertices.max(0) for p in parts], 0)
        k = size / (hi - lo).max()
        shift = np.array([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, -lo[2]]) * k
        parts = [_scaled(p, k, shift) for p in parts]
        rest = np.array(self.rest) * k + shift
        skeleton = Skeleton(list(self.names), np.array(self.parents), rest, self.info)
        return skeleton, parts, np.array([s[1] for s in self.specs])


def _scaled(p: Part, k: float, shift) -> Part:
    """Part p scaled by k about the origin, then translated by shift (exact, no re-meshing)."""
    pose = p.pose.copy()
    pose[:3, 3] = pose[:3, 3] * k + shift
    return Part(p.kind, p.size * k, pose, p.color, p.vertices * k + shift, p.faces)


def _limb(b: _Body, names, tag, parent, pts, radii, colors, role="leg", **info) -> list[int]:
    """A chain of capsules through pts; joint k (named names[k] + "_" + tag) sits at pts[k]
    with level k. colors: one colour or one per segment. Returns the joint indices."""
    joints = []
    for k in range(len(pts) - 1):
        parent = b.joint(f"{names[k]}_{tag}", parent, pts[k], role, level=k, **info)
        col = colors[k] if isinstance(colors, (list, tuple)) else colors
        b.capsule(parent, pts[k], pts[k + 1], radii[k], col)
        joints.append(parent)
    return joints


def _palette(rng):
    """Body, limb, head and accent colours (uint8) of one individual."""
    h, s, v = rng.random(), rng.uniform(0.3, 0.8), rng.uniform(0.5, 0.9)
    hsv = lambda h, s, v: (np.array(colorsys.hsv_to_rgb(h % 1, min(s, 1), min(v, 1))) * 255).astype(np.uint8)
    return dict(body=hsv(h, s, v), limb=hsv(h + 0.03, s, v * 0.75), head=hsv(h - 0.03, s * 0.8, v * 1.1),
                accent=hsv(h + rng.uniform(0.25, 0.75), 0.8, 0.9))


def _quadruped(b: _Body, rng, c):
    h = rng.uniform(0.45, 0.9)                       # hip height, body length 1
    rb = rng.uniform(0.14, 0.24)                     # torso radius
    rl = rb * rng.uniform(0.25, 0.45)                # leg radius
    w = rb * 0.6
    z = h
    pelvis = b.joint("pelvis", None, (-0.5, 0, z), "spine", s=0.0)
    spine = b.joint("spine", pelvis, (0, 0, z), "spine", s=0.5)
    b.ellipsoid(pelvis, (-0.5, 0, z), (0, 0, z), (rb, rb), c["body"], stretch=1.35)
    b.ellipsoid(spine, (0, 0, z), (0.5, 0, z), (rb * 1.05, rb * 1.1), c["body"], stretch=1.35)
    chest = np.array([0.5, 0, z])
    up = np.deg2rad(rng.uniform(25, 70))
    neck_end = chest + rng.uniform(0.2, 0.5) * np.array([np.cos(up), 0, np.sin(up)])
    neck = b.joint("neck", spine, chest, "neck")
    b.capsule(neck, chest, neck_end, rb * 0.45, c["body"])
    rh = rng.uniform(0.1, 0.18)
    head = b.joint("head", neck, neck_end, "head")
    b.ellipsoid(head, neck_end, neck_end + rh * 2.2 * np.array([np.cos(0.35), 0, -np.sin(0.35)]), (rh, rh),
                c["head"], stretch=1.2)
    for side in (1, -1):                             # ears
        e0 = neck_end + [0, side * rh * 0.5, rh * 0.6]
        e1 = e0 + [-0.03, side * rh * 0.3, rh * rng.uniform(0.5, 1.2)]
        b.ellipsoid(head, e0, e1, (rh * 0.25, rh * 0.12), c["accent"])
    tail = rng.uniform(0.0, 0.8)
    if tail > 0.1:
        d = np.array([-np.cos(0.5), 0, np.sin(0.5)]) * tail / 3
        p, parent = np.array([-0.5, 0, z]), pelvis
        for i in range(3):
            parent = b.joint(f"tail{i}", parent, p, "tail", s=i / 3)
            b.capsule(parent, p, p + d, rb * (0.3 - 0.06 * i), c["body"])
            p = p + d
    phases = {("L", 0): (0, 0), ("L", 1): (0.25, 0.5), ("R", 0): (0.5, 0.5), ("R", 1): (0.75, 0)}  # walk, trot
    for fore in (0, 1):
        x = (0.5 - rb * 0.4) if fore else (-0.5 + rb * 0.4)
        for side in (1, -1):
            wp, rp = phases[("L" if side > 0 else "R", fore)]
            knee = 1 if fore else -1
            pts = [[x, side * w, z - rb * 0.3], [x + 0.06 * knee, side * w, z * 0.5],   # hip, knee,
                   [x - 0.03 * knee, side * w, z * 0.12], [x + 0.1 * h, side * w, 0]]  # ankle, toe
            tag = ("f" if fore else "h") + ("l" if side > 0 else "r")
            _limb(b, ("hip", "knee", "ankle"), tag, spine if fore else pelvis, np.array(pts),
                  (rl * 1.3, rl, rl * 0.8), c["limb"], side=side, walk_phase=wp, run_phase=rp, knee=knee, swing="y")


def _biped(b: _Body, rng, c):
    leg = rng.uniform(0.8, 1.2)
    torso = rng.uniform(0.5, 0.8)
    rt = rng.uniform(0.12, 0.2)
    rl = rt * rng.uniform(0.3, 0.45)
    arm = leg * rng.uniform(0.5, 0.9)
    rh = rng.uniform(0.1, 0.15)
    pelvis = b.joint("pelvis", None, (0, 0, leg), "spine", s=0.0)
    spine = b.joint("spine", pelvis, (0, 0, leg + torso * 0.5), "spine", s=0.5)
    b.ellipsoid(pelvis, (0, 0, leg - rt * 0.3), (0, 0, leg + torso * 0.5), (rt * 0.95, rt * 0.7), c["body"], 1.2)
    b.ellipsoid(spine, (0, 0, leg + torso * 0.5), (0, 0, leg + torso), (rt * 1.15, rt * 0.75), c["body"], 1.2)
    top = np.array([0, 0, leg + torso])
    neck = b.joint("neck", spine, top, "neck")
    neck_end = top + [0, 0, rng.uniform(0.08, 0.2)]
    b.capsule(neck, top, neck_end, rt * 0.35, c["body"])
    head = b.joint("head", neck, neck_end, "head")
    b.ellipsoid(head, neck_end, neck_end + [0.03, 0, 2.1 * rh], (rh, rh * 1.1), c["head"])
    nose = neck_end + [rh * 0.6, 0, rh]
    b.ellipsoid(head, nose, nose + [rh * 0.8, 0, -rh * 0.2], (rh * 0.25, rh * 0.25), c["accent"])
    sw, hw = rt * 1.15, rt * 0.55
    for side in (1, -1):
        t = "l" if side > 0 else "r"
        ph = 0.0 if side > 0 else 0.5
        sh = np.array([0, side * sw, leg + torso * 0.9])
        el = sh + [0, side * 0.08, -arm * 0.5]
        wr = el + [0.05, 0, -arm * 0.45]
        _, elbow = _limb(b, ("shoulder", "elbow"), t, spine, np.array([sh, el, wr]), (rl * 0.9, rl * 0.75),
                         c["limb"], role="arm", side=side, walk_phase=ph + 0.5)
        b.ellipsoid(elbow, wr, wr + [0.02, 0, -arm * 0.15], (rl * 1.0, rl * 0.6), c["head"])   # hand
        hip = np.array([0, side * hw, leg])
        pts = [hip, hip + [0.04, 0, -leg * 0.5], hip + [0, 0, -leg * 0.92], hip + [leg * 0.18, 0, -leg]]
        _limb(b, ("hip", "knee", "ankle"), t, pelvis, np.array(pts), (rl * 1.3, rl * 1.05, rl * 0.8), c["limb"],
              side=side, walk_phase=ph, run_phase=ph, knee=-1, swing="y")
    if rng.random() < 0.4:                           # a dinosaur-like tail
        d = np.array([-0.8, 0, -0.35]) * rng.uniform(0.2, 0.35)
        p, parent = np.array([-rt * 0.5, 0, leg]), pelvis
        for i in range(3):
            parent = b.joint(f"tail{i}", parent, p, "tail", s=i / 3)
            b.capsule(parent, p, p + d, rt * (0.6 - 0.15 * i), c["body"])
            p = p + d


def _hexapod(b: _Body, rng, c):
    lt = rng.uniform(0.25, 0.4)                      # thorax length
    rt = lt * rng.uniform(0.4, 0.55)
    la, ra = rng.uniform(0.4, 0.8), rng.uniform(0.15, 0.25)
    rh = rng.uniform(0.08, 0.12)
    lf, lti = rng.uniform(0.25, 0.45), rng.uniform(0.3, 0.6)
    hb = lti * 0.7
    thorax = b.joint("thorax", None, (0, 0, hb), "spine", s=0.5)
    b.ellipsoid(thorax, (-lt / 2, 0, hb), (lt / 2, 0, hb), (rt, rt * 0.85), c["body"], 1.15)
    abd = b.joint("abdomen", thorax, (-lt / 2, 0, hb), "tail", s=0.0)
    b.ellipsoid(abd, (-lt / 2, 0, hb), (-lt / 2 - la, 0, hb + la * 0.15), (ra, ra * 0.85), c["accent"], 1.1)
    head = b.joint("head", thorax, (lt / 2, 0, hb), "head")
    b.ellipsoid(head, (lt / 2, 0, hb), (lt / 2 + 2 * rh, 0, hb - rh * 0.3), (rh, rh), c["head"], 1.1)
    for side in (1, -1):
        a0 = np.array([lt / 2 + rh * 1.5, side * rh * 0.4, hb + rh * 0.5])
        aj = b.joint(f"antenna_{'l' if side > 0 else 'r'}", head, a0, "antenna", side=side)
        b.capsule(aj, a0, a0 + np.array([0.6, side * 0.35, 0.5]) * la * 0.5, 0.012, c["limb"])
    for i, x in enumerate((lt * 0.35, 0.0, -lt * 0.35)):
        for side in (1, -1):
            ph = 0.0 if (i % 2 == 0) == (side > 0) else 0.5            # tripod gait
            dx = (0.12, 0.0, -0.12)[i]
            hip = np.array([x, side * rt * 0.8, hb])
            kn = hip + [dx, side * lf * 0.8, lf * 0.55]
            ft = np.array([kn[0] + dx * 1.5, kn[1] + side * lti * 0.45, 0.0])
            _limb(b, ("hip", "knee"), f"{i}{'l' if side > 0 else 'r'}", thorax, np.array([hip, kn, ft]),
                  (0.03, 0.022), c["limb"], side=side, walk_phase=ph, run_phase=ph, knee=1, swing="z")


def _snake(b: _Body, rng, c):
    n = 10
    r0 = rng.uniform(0.045, 0.08)
    amp, waves = rng.uniform(0.1, 0.25), rng.uniform(0.6, 1.2)
    s = np.arange(n + 1) / n
    pts = np.stack([0.5 - s, amp * np.sin(2 * np.pi * waves * s), np.full(n + 1, r0)], 1)   # head at +x
    parent = None
    for i in range(n):
        parent = b.joint(f"body{i}", parent, pts[i], "body", s=i / n)
        b.capsule(parent, pts[i], pts[i + 1], r0 * (1 - 0.7 * ((i + 0.5) / n) ** 2), c["body"] if i % 2 else c["limb"])
        if i == 0:                                   # head, bound to the first joint
            fwd = (pts[0] - pts[1]) / np.linalg.norm(pts[0] - pts[1])
            b.ellipsoid(parent, pts[0] - fwd * r0 * 0.3, pts[0] + fwd * r0 * 2.5, (r0 * 1.35, r0 * 0.95), c["head"])


def _bird(b: _Body, rng, c):
    lb = rng.uniform(0.35, 0.6)
    rb = lb * rng.uniform(0.3, 0.42)
    leg = rng.uniform(0.2, 0.45)
    wing = rng.uniform(0.4, 0.8)
    rh = rng.uniform(0.07, 0.11)
    hb = leg + rb * 0.8
    pelvis = b.joint("pelvis", None, (-lb * 0.3, 0, hb), "spine", s=0.0)
    chest = b.joint("spine", pelvis, (lb * 0.2, 0, hb + lb * 0.08), "spine", s=0.6)
    b.ellipsoid(pelvis, (-lb * 0.5, 0, hb - lb * 0.05), (lb * 0.4, 0, hb + lb * 0.15), (rb, rb * 0.9), c["body"], 1.1)
    n0 = np.array([lb * 0.35, 0, hb + lb * 0.15])
    up = np.deg2rad(rng.uniform(55, 85))
    n1 = n0 + rng.uniform(0.1, 0.3) * np.array([np.cos(up), 0, np.sin(up)])
    neck = b.joint("neck", chest, n0, "neck")
    b.capsule(neck, n0, n1, rb * 0.35, c["body"])
    head = b.joint("head", neck, n1, "head")
    b.ellipsoid(head, n1 - [rh * 0.5, 0, 0], n1 + [rh * 1.2, 0, rh * 0.3], (rh, rh), c["head"])
    beak0 = n1 + [rh * 1.3, 0, rh * 0.2]
    b.ellipsoid(head, beak0, beak0 + [rh * rng.uniform(0.8, 2.0), 0, -rh * 0.3], (rh * 0.3, rh * 0.25), c["accent"])
    t0 = np.array([-lb * 0.5, 0, hb])
    tail = b.joint("tail0", pelvis, t0, "tail", s=0.0)
    b.ellipsoid(tail, t0, t0 + np.array([-1, 0, 0.3]) * rng.uniform(0.15, 0.35), (rb * 0.7, 0.02), c["limb"])
    for side in (1, -1):
        t = "l" if side > 0 else "r"
        sh = np.array([lb * 0.1, side * rb * 0.8, hb + rb * 0.4])
        el = sh + [-0.05, side * wing * 0.45, 0.02]
        tip = el + [-0.12, side * wing * 0.55, -0.02]
        w0 = b.joint(f"wing_{t}", chest, sh, "wing", side=side, level=0)
        b.ellipsoid(w0, sh, el, (wing * 0.14, 0.025), c["limb"], 1.1)
        w1 = b.joint(f"wingtip_{t}", w0, el, "wing", side=side, level=1)
        b.ellipsoid(w1, el, tip, (wing * 0.1, 0.02), c["accent"], 1.05)
        ph = 0.0 if side > 0 else 0.5
        y = side * rb * 0.4
        pts = [[-lb * 0.05, y, hb - rb * 0.5], [-lb * 0.01, y, leg * 0.5], [0, y, leg * 0.06], [rb * 0.6, y, 0]]
        _limb(b, ("hip", "knee", "ankle"), t, pelvis, np.array(pts), (0.035, 0.02, 0.018),
              [c["limb"], c["accent"], c["accent"]], side=side, walk_phase=ph, run_phase=ph, knee=-1, swing="y")


def _fish(b: _Body, rng, c):
    hf = rng.uniform(0.2, 0.4)                       # body height, length 1
    wf = hf * rng.uniform(0.35, 0.6)                 # body width
    n = 4
    x = 0.5 - np.arange(n + 1) * 0.8 / n             # head at +0.5, tail stalk at -0.3
    z = hf
    prof = lambda s: 1 - 0.75 * s ** 1.5             # thickness profile along the body
    parent = None
    for i in range(n):
        parent = b.joint(f"body{i}", parent, (x[i], 0, z), "body", s=i / n)
        sm = (i + 0.5) / n
        b.ellipsoid(parent, (x[i], 0, z), (x[i + 1], 0, z), (wf * prof(sm) / 2, hf * prof(sm) / 2),
                    c["head"] if i == 0 else c["body"], stretch=1.35)
        if i == 1:
            top = np.array([x[i], 0, z + hf * prof(sm) * 0.4])
            b.ellipsoid(parent, top, top + [-0.12, 0, hf * rng.uniform(0.3, 0.6)], (0.012, 0.06), c["accent"])
    fin = b.joint("tail_fin", parent, (x[n], 0, z), "body", s=1.0)
    fl = rng.uniform(0.15, 0.3)
    b.ellipsoid(fin, (x[n], 0, z), (x[n] - fl, 0, z), (0.012, hf * rng.uniform(0.35, 0.6)), c["accent"], 1.1)
    for side in (1, -1):
        p0 = np.array([x[0] - 0.12, side * wf * 0.35, z - hf * 0.25])
        pj = b.joint(f"fin_{'l' if side > 0 else 'r'}", 0, p0, "fin", side=side)
        b.ellipsoid(pj, p0, p0 + [-0.1, side * 0.14, -0.04], (0.05, 0.01), c["accent"])


_BUILDERS = {"quadruped": _quadruped, "biped": _biped, "hexapod": _hexapod, "snake": _snake,
             "bird": _bird, "fish": _fish}


@dataclass
class Creature:
    """One individual: skeleton, body parts and the skinned rest mesh.

    vertices (Nv, 3) rest mesh; faces (F, 3); face_colors (F, 3) uint8; sample_weight (F,)
    0 on faces buried inside another part (GT samples stay on the outer surface);
    weights (Nv, J) skin weights, rows sum to 1; part_joint (P,) the bone of each part.
    """

    body_plan: str
    seed: int
    size: float
    skeleton: Skeleton
    parts: list[Part]
    part_joint: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray
    face_colors: np.ndarray
    sample_weight: np.ndarray
    weights: np.ndarray

    @property
    def name(self) -> str:
        return f"{self.body_plan}_{self.seed}"


def make_creature(body_plan: str, seed: int, size: float | None = None, detail: int = 0) -> Creature:
    """Build the individual (body_plan, seed): random proportions, longest extent `size` m
    (drawn from SIZE_RANGE when None)."""
    if body_plan not in _BUILDERS:
        raise ValueError(f"make_creature: body_plan must be one of {BODY_PLANS}, got {body_plan!r}")
    rng = np.random.default_rng(seed)
    size = float(rng.uniform(*SIZE_RANGE)) if size is None else float(size)
    if not size > 0:
        raise ValueError(f"make_creature: size must be positive metres, got {size}")
    b = _Body()
    _BUILDERS[body_plan](b, rng, _palette(rng))
    skeleton, parts, part_joint = b.build(size, detail)
    vertices, faces, _, colors, weight = merge_parts(parts)
    w = skin_weights(vertices, parts, part_joint, len(skeleton))
    return Creature(body_plan, int(seed), size, skeleton, parts, part_joint, vertices, faces, colors, weight, w)


# ------------------------------------------------------------------------------ motions
def motion_params(motion: str, seed: int) -> dict:
    """The random parameters of one motion instance (frequency, amplitude, direction, ...)."""
    if motion not in MOTIONS:
        raise ValueError(f"motion must be one of {MOTIONS}, got {motion!r}")
    rng = np.random.default_rng(seed)
    return dict(freq=float(rng.uniform(0.8, 1.3)), amp=float(rng.uniform(0.75, 1.25)),
                phase=float(rng.uniform(0, 2 * np.pi)), direction=float(rng.choice([-1.0, 1.0])),
                turn=float(rng.uniform(0.5, 1.0) * np.pi), jump=float(rng.uniform(0.2, 0.4)),
                wag_freq=float(rng.uniform(1.5, 3.0)))


def motion_angles(creature: Creature, motion: str, times, duration: float, seed: int):
    """Procedural joint angles (T, J, 3) = (yaw, pitch, roll) and root motion (T, 4, 4).

    Every body plan performs every motion; each role (leg, arm, wing, tail, body chain, ...)
    has its own rule per motion, and the gait phases of the legs come from the body plan.
    """
    p = motion_params(motion, seed)
    t = np.asarray(times, np.float64)
    u = t / duration                                                # 0..1 over the clip
    sk, size = creature.skeleton, creature.size
    legged = any(i["role"] == "leg" for i in sk.info)
    run = motion == "run"
    f = p["freq"] * (1.7 if run else 1.0)
    a = p["amp"] * (1.4 if run else 1.0) * (0.6 if motion == "turn" else 1.0)
    phi = 2 * np.pi * f * t + p["phase"]                            # gait phase (T,)
    wag = 2 * np.pi * p["wag_freq"] * t + p["phase"]
    dirn = p["direction"]
    bump = np.sin(np.pi * u)                                        # 0 -> 1 -> 0 over the clip
    # jump: crouch (u < 0.3), flight (0.3..0.7), landing crouch (0.7..0.85)
    fl = np.clip((u - 0.3) / 0.4, 0, 1)
    flight = np.where((u > 0.3) & (u < 0.7), np.sin(np.pi * fl), 0.0)
    crouch = np.where(u < 0.3, np.sin(np.pi * u / 0.3 / 2) ** 2, 0) + \
        np.where((u >= 0.7) & (u < 0.85), np.sin(np.pi * (u - 0.7) / 0.15), 0)
    locomote = motion in ("walk", "run", "turn")

    E = np.zeros((len(t), len(sk), 3))                              # yaw, pitch, roll
    for j, info in enumerate(sk.info):
        role, side = info["role"], info.get("side", 0)
        y, pt, r = E[:, j, 0], E[:, j, 1], E[:, j, 2]                # views: write in place
        if role == "leg":
            psi = phi + 2 * np.pi * info["run_phase" if run else "walk_phase"]
            kn, lvl = info["knee"], info["level"]
            if locomote:
                if info["swing"] == "y":
                    if lvl == 0:
                        pt += 0.4 * a * np.sin(psi)
                    elif lvl == 1:
                        pt += kn * 0.7 * a * np.maximum(0, np.sin(psi + np.pi / 2))
                    else:
                        pt -= kn * 0.3 * a * np.maximum(0, np.sin(psi + np.pi / 2))
                else:                                               # insect legs swing about z, lift about x
                    if lvl == 0:
                        y += side * 0.35 * a * np.sin(psi)
                        r += side * 0.25 * a * np.maximum(0, np.cos(psi))
            elif motion == "jump":
                flex = crouch + 0.6 * flight
                if info["swing"] == "y":
                    pt += (-0.4, 0.9, -0.5)[lvl] * kn * flex
                elif lvl == 0:
                    r += side * 0.35 * flex
            else:                                                   # wag / look: small weight shifts
                pt += 0.05 * np.sin(wag * 0.5 + lvl)
        elif role == "arm":
            psi = phi + 2 * np.pi * info["walk_phase"]
            if locomote:
                pt += (0.5 * a * np.sin(psi)) if info["level"] == 0 else -0.4 * a
            elif motion == "wag":                                   # raise the arm and wave
                r += side * ((1.8 + 0.25 * np.sin(wag)) if info["level"] == 0 else 0.6 * np.sin(wag) + 0.3)
            elif motion == "jump":
                r += side * 1.2 * flight
            else:
                pt += 0.2 * np.sin(wag * 0.5) * (info["level"] == 0)
        elif role == "wing":
            lvl = info["level"]
            amp = {"walk": 0.15, "run": 0.6, "turn": 0.3, "jump": 1.0, "wag": 1.0, "look": 0.1}[motion]
            freq = wag if motion in ("wag", "jump", "run") else phi
            r += side * amp * (np.sin(freq - 0.6 * lvl) + (0.3 if motion in ("jump", "wag") else 0))
            if motion == "jump":
                r *= np.maximum(flight, crouch)
            if motion == "turn":
                r += dirn * side * 0.3 * bump
        elif role in ("fin", "antenna"):
            r += side * 0.35 * np.sin(2 * phi if locomote else wag)
            if role == "antenna":
                y += side * 0.25 * np.sin(wag + side)
        elif role == "tail":
            s = info["s"]
            if motion == "wag":
                y += 0.6 * p["amp"] * np.sin(wag - 1.5 * s)
            elif motion == "jump":
                pt -= 0.5 * flight
            elif motion == "turn":
                y -= dirn * 0.3 * bump
            elif motion == "look":
                y += 0.2 * np.sin(0.5 * wag - s)
            else:
                y += 0.2 * a * np.sin(phi - np.pi * s)
                pt += 0.1 * a * np.sin(2 * phi) * run
        elif role == "spine":
            if motion == "run":
                pt += 0.12 * a * np.sin(2 * phi) * (1 if info["s"] < 0.5 else -1)
            elif motion == "walk":
                y += 0.05 * a * np.sin(phi)
            elif motion == "jump":
                pt += 0.15 * (flight - crouch) * (1 if info["s"] < 0.5 else -1)
            elif motion == "turn":
                y += dirn * 0.15 * bump * (info["s"] > 0)
            elif motion == "wag":
                y += 0.08 * np.sin(wag)
            else:
                pt += 0.03 * np.sin(2 * np.pi * 0.4 * t)            # breathing
        elif role == "neck":
            if motion == "look":
                y += 0.6 * p["amp"] * np.sin(2 * np.pi * 0.7 * p["freq"] * t + p["phase"])
                pt += 0.2 * np.sin(2 * np.pi * 1.1 * p["freq"] * t)
            elif motion == "turn":
                y += dirn * 0.4 * bump
            elif motion == "jump":
                pt -= 0.25 * flight
            elif motion == "wag":
                r += 0.15 * np.sin(wag * 0.5)
            else:
                pt += 0.08 * a * np.sin(2 * phi)
        elif role == "head":
            if motion == "look":
                pt += 0.3 * np.sin(2 * np.pi * 1.3 * p["freq"] * t + 1.0)
                y += 0.3 * np.sin(2 * np.pi * 0.9 * p["freq"] * t)
            else:
                pt += 0.05 * np.sin(2 * phi)
        elif role == "body":                                        # snake / fish chain, s = 0 at the head
            s = info["s"]
            if locomote:
                wave = 0.35 * a * (0.3 + 0.7 * s) * np.sin(phi - 2 * np.pi * 0.8 * s)
                y += wave * (0.5 if s > 0 else 0.2)
                if motion == "turn":
                    y += dirn * 0.5 * bump / 3 * (s > 0)
            elif motion == "jump":
                pt += 0.35 * (flight - 0.5 * crouch) * np.cos(np.pi * s) * (s > 0)
            elif motion == "wag":
                y += 0.45 * p["amp"] * np.sin(wag) * np.sin(np.pi * (s + 0.15)) * (s > 0)
            else:                                                   # look: rear up and sway the front
                front = max(0.0, 1 - 3 * s) * (s > 0)
                pt -= 0.35 * front * bump
                y += 0.4 * np.sin(2 * np.pi * 0.7 * p["freq"] * t + p["phase"]) * (s == 0) + 0.1 * front * np.sin(wag)

    # root: travel along the heading, turning, leaping; distances scale with the body size
    speed = {"walk": 0.45, "run": 1.1, "turn": 0.25}.get(motion, 0.0) * size * p["freq"] * (1 if legged else 0.6)
    yaw = np.zeros_like(t)
    if motion == "turn":
        yaw = dirn * p["turn"] * smoothstep(u)
    elif motion in ("look", "wag"):
        yaw = dirn * 0.25 * bump
    fine = np.linspace(0, max(t[-1], 1e-9), 257)                    # integrate the path finely
    fyaw = np.interp(fine, t, yaw) if len(t) > 1 else np.zeros_like(fine)
    dx = np.concatenate([[0], np.cumsum(np.diff(fine) * speed * np.cos(fyaw[:-1]))])
    dy = np.concatenate([[0], np.cumsum(np.diff(fine) * speed * np.sin(fyaw[:-1]))])
    pos = np.stack([np.interp(t, fine, dx), np.interp(t, fine, dy), np.zeros_like(t)], 1)
    if motion == "jump":
        pos[:, 0] += 0.6 * size * smoothstep(fl)
        pos[:, 2] += p["jump"] * size * flight - 0.08 * size * crouch * legged
    elif locomote:
        pos[:, 2] += 0.015 * size * a * np.abs(np.sin(phi)) * legged  # bob
    root = np.tile(np.eye(4), (len(t), 1, 1))
    root[:, :3, :3] = Rotation.from_euler("z", yaw[:, None]).as_matrix()
    root[:, :3, 3] = pos
    return E, root


def animate(creature: Creature, motion: str, times, duration: float, seed: int):
    """Posed vertices (T, Nv, 3) and root poses (T, 4, 4) of `creature` doing `motion`."""
    euler, root = motion_angles(creature, motion, times, duration, seed)
    A = forward_kinematics(creature.skeleton, euler, root)
    return linear_blend_skinning(creature.vertices, creature.weights, A), root


# -------------------------------------------------------------------------------- splits
def creature_split_plan(num_sequences: int, seed: int = 0, *, body_plans=BODY_PLANS, motions=MOTIONS,
                        motions_per_individual: int = 4, unseen_individual_frac: float = 0.15,
                        unseen_motions_per_individual: int = 1) -> list[dict]:
    """Which (individual, motion) each sequence shows, and its split, as in DynaTok's DT4D table.

    Individuals (body plan + proportion seed) each perform `motions_per_individual`
    distinct motions; body plans take turns (with fewer than two individuals per plan,
    fewer plans are used). About `unseen_individual_frac` of the individuals are held out whole
    ("unseen_individual"; they only perform motions that occur in train, and their body
    plan also has seen individuals). Each seen individual keeps
    `unseen_motions_per_individual` of its motions out of train ("unseen_motion").
    Returns `num_sequences` dicts: body_plan, individual_seed, individual, motion,
    motion_seed, split.
    """
    if num_sequences < 1:
        raise ValueError(f"creature_split_plan: num_sequences must be >= 1, got {num_sequences}")
    if not 1 <= motions_per_individual <= len(motions):
        raise ValueError(f"motions_per_individual must be in [1, {len(motions)}], got {motions_per_individual}")
    if not 0 <= unseen_motions_per_individual < motions_per_individual:
        raise ValueError("unseen_motions_per_individual must leave at least one train motion per individual")
    for m in motions:
        if m not in MOTIONS:
            raise ValueError(f"unknown motion {m!r}; choose from {MOTIONS}")
    for bp in body_plans:
        if bp not in BODY_PLANS:
            raise ValueError(f"unknown body plan {bp!r}; choose from {BODY_PLANS}")
    rng = np.random.default_rng(seed)
    n_ind = -(-num_sequences // motions_per_individual)
    counts = [motions_per_individual] * (n_ind - 1) + [num_sequences - motions_per_individual * (n_ind - 1)]
    # few individuals: use fewer body plans, so that each has two and one can be held out
    order = rng.permutation(len(body_plans))[:min(len(body_plans), max(1, n_ind // 2))]
    plans = [body_plans[order[i % len(order)]] for i in range(n_ind)]
    ind_seeds = rng.choice(10 ** 6, n_ind, replace=False)
    # hold out whole individuals whose body plan keeps at least one seen individual
    n_unseen = int(round(unseen_individual_frac * n_ind)) if n_ind >= 3 else 0
    unseen: set[int] = set()
    for i in rng.permutation(n_ind):
        if len(unseen) >= n_unseen:
            break
        if any(plans[k] == plans[i] and k != i and k not in unseen for k in range(n_ind)):
            unseen.add(int(i))
    own = [list(rng.choice(motions, c, replace=False)) for c in counts]
    held = [0 if i in unseen else min(unseen_motions_per_individual, c - 1) for i, c in enumerate(counts)]
    train_motions = {m for i in range(n_ind) if i not in unseen for m in own[i][:counts[i] - held[i]]}
    pool = [m for m in motions if m in train_motions]
    plan = []
    for i in range(n_ind):
        ms = own[i]
        if i in unseen:                               # held-out individuals only do seen motions
            ms = list(rng.choice(pool, counts[i], replace=len(pool) < counts[i]))
        for k, m in enumerate(ms):
            split = ("unseen_individual" if i in unseen else
                     "train" if k < counts[i] - held[i] else "unseen_motion")
            plan.append(dict(body_plan=plans[i], individual_seed=int(ind_seeds[i]),
                             individual=f"{plans[i]}_{int(ind_seeds[i])}", motion=str(m),
                             motion_seed=int(rng.integers(2 ** 31)), split=split))
    return plan


# ----------------------------------------------------------------------------- sequences
def make_creature_sequence(seed: int, body_plan: str | None = None, motion: str | None = None, *,
                           individual_seed: int | None = None, motion_seed: int | None = None,
                           size: float | None = None, num_frames: int = 16, duration: float = 2.0,
                           image_size=(160, 160), n_surface: int = 4096, camera: CameraSpec | None = None,
                           depth_noise: float = 0.0, meta: dict | None = None) -> Sequence4D:
    """One skinned creature doing one motion, filmed by one moving depth camera.

    Unspecified choices (body plan, individual, motion, its parameters, the camera path)
    are drawn from `seed`; the individual is (body_plan, individual_seed) and the motion
    instance (motion, motion_seed), so the same individual can be filmed doing several
    motions. `duration` seconds of motion are sampled at `num_frames` frames.
    """
    _check_common(num_frames, image_size, n_surface, duration)
    rng_pick, rng_cam, rng_cap = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    pick_plan, pick_motion = rng_pick.integers(len(BODY_PLANS)), rng_pick.integers(len(MOTIONS))
    pick_ind, pick_mseed = (int(x) for x in rng_pick.integers(10 ** 6, size=2))
    body_plan = BODY_PLANS[pick_plan] if body_plan is None else body_plan
    motion = MOTIONS[pick_motion] if motion is None else motion
    individual_seed = pick_ind if individual_seed is None else int(individual_seed)
    motion_seed = pick_mseed if motion_seed is None else int(motion_seed)
    camera = CameraSpec(**camera) if isinstance(camera, dict) else camera or CameraSpec()
    creature = make_creature(body_plan, individual_seed, size)
    times = np.arange(num_frames) * duration / num_frames
    V, root = animate(creature, motion, times, duration, motion_seed)
    K, c2w = camera_path(V, camera, image_size, rng_cam)            # follows and frames the creature
    info = dict(kind="creatures", name=f"{creature.name}_{motion}_{motion_seed}", seed=int(seed),
                body_plan=body_plan, individual=creature.name, individual_seed=individual_seed,
                motion=motion, motion_seed=motion_seed, size_m=creature.size,
                generator=dict(num_frames=num_frames, duration=duration, image_size=list(image_size),
                               n_surface=n_surface, camera=camera.to_dict(), depth_noise=depth_noise),
                source="fourdlib.data.synthetic", licence=LICENCE)
    info.update(meta or {})
    return capture(V, creature.faces, K, c2w, image_size, times=times, face_colors=creature.face_colors,
                   object_names=[creature.name], object_poses=root[:, None].astype(np.float32),
                   object_dynamic=np.ones(1, bool), object_background=np.zeros(1, bool),
                   n_surface=n_surface, surface_face_weight=creature.sample_weight,
                   depth_noise=depth_noise, seed=int(rng_cap.integers(2 ** 31)), meta=info)
