"""What the MuJoCo MJX environments share: loading a model with the physics settings
chosen for speed, advancing it by one env step under jit, and drawing frames with
`mujoco.Renderer`.

The physics state an env carries is only `(qpos, qvel)` and the constraint solver's
warm start (`MjxPhysics`): every other field of `mjx.Data` is recomputed from them by
the first substep, so the state is small, auto-reset's `jnp.where` over it is cheap
and a reset needs only kinematics.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import io
import os
import sys

# mujoco picks its OpenGL backend when it is first imported; without a display the
# default (GLFW) cannot open a context, EGL can.
if "mujoco" not in sys.modules and not os.environ.get("DISPLAY"):
    os.environ.setdefault("MUJOCO_GL", "egl")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import mujoco  # noqa: E402
import numpy as np  # noqa: E402
from flax import struct  # noqa: E402

# mujoco.mjx probes its optional warp backend on import and prints the failure; that one
# message (warp is not installed) is dropped, anything else it prints is passed on.
_WARP_ABSENT = (
    "Failed to import warp: No module named 'warp'",
    "Failed to import mujoco_warp: No module named 'warp'",
)
with contextlib.redirect_stdout(io.StringIO()) as _probe:
    from mujoco import mjx  # noqa: E402
for _line in _probe.getvalue().splitlines():
    if _line not in _WARP_ABSENT:
        print(_line)

from envs import cpu_linalg  # noqa: E402
from envs.core import Env, EnvState, RenderError  # noqa: E402

# MJX's Cholesky factorisations must not go through jaxlib's batched LAPACK kernels on
# CPU, which can stall with large batches (envs/cpu_linalg.py).
cpu_linalg.install()


@struct.dataclass
class MjxPhysics:
    qpos: jax.Array  # (nq,)
    qvel: jax.Array  # (nv,)
    qacc_warmstart: jax.Array  # (nv,) the solver's starting point for the next substep


@dataclasses.dataclass(frozen=True)
class PhysicsSettings:
    """How an MJX env integrates; docs/envs.md lists them per env."""

    timestep: float  # seconds per physics substep
    frame_skip: int  # substeps per env step
    iterations: int = 1  # constraint solver iterations
    ls_iterations: int = 4  # line-search iterations per solver iteration
    contacts: bool = False  # whether contacts are simulated at all
    integrator: str = "euler"  # "euler" | "implicitfast"

    @property
    def control_dt(self) -> float:
        return self.timestep * self.frame_skip

    def describe(self) -> str:
        return (
            f"dt {self.timestep} × {self.frame_skip} substeps, {self.integrator}, "
            f"solver {self.iterations} it / ls {self.ls_iterations}, "
            f"contacts {'on' if self.contacts else 'off'}"
        )


def brax_asset(name: str) -> str:
    """Path of an MJCF model shipped inside the installed brax package (found without
    importing brax, which would import mujoco before the GL backend is chosen)."""
    spec = importlib.util.find_spec("brax")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the brax package is needed for its {name} model")
    return os.path.join(spec.submodule_search_locations[0], "envs", "assets", name)


_INTEGRATORS = {
    "euler": mujoco.mjtIntegrator.mjINT_EULER,
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
}


def load_model(
    xml: str, settings: PhysicsSettings, total_mass: float | None = None
) -> mujoco.MjModel:
    """An MjModel from MJCF text (or a path to an .xml file) with `settings` applied,
    its masses scaled to `total_mass` if given."""
    if xml.lstrip().startswith("<"):
        model = mujoco.MjModel.from_xml_string(xml)
    else:
        model = mujoco.MjModel.from_xml_path(xml)
    if total_mass is not None:
        mujoco.mj_setTotalmass(model, total_mass)
        mujoco.mj_setConst(model, mujoco.MjData(model))  # constants that depend on masses
    model.opt.timestep = settings.timestep
    model.opt.iterations = settings.iterations
    model.opt.ls_iterations = settings.ls_iterations
    model.opt.integrator = _INTEGRATORS[settings.integrator]
    if not settings.contacts:
        model.opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    return model


@dataclasses.dataclass(frozen=True)
class Marker:
    """A sphere drawn into a frame, e.g. the commanded goal."""

    pos: tuple[float, float, float]
    radius: float
    rgba: tuple[float, float, float, float] = (0.9, 0.2, 0.2, 0.5)


class MjxEnv(Env):
    """An `Env` whose physics is an MJX model advanced `frame_skip` substeps per step.

    Subclasses call `_init_physics` in `__init__` and build `_reset_physics` and
    `_step_physics` from `simulate` and `kinematics`; for frames they give
    `_markers(task)` and may change `_camera(data)`.
    """

    settings: PhysicsSettings
    mj_model: mujoco.MjModel
    mjx_model: mjx.Model

    def _init_physics(
        self, xml: str, settings: PhysicsSettings, total_mass: float | None = None
    ) -> None:
        self.settings = settings
        self.mj_model = load_model(xml, settings, total_mass)
        self.mjx_model = mjx.put_model(self.mj_model)
        self._data = mjx.make_data(self.mjx_model)

    def simulate(self, physics: MjxPhysics, ctrl: jax.Array) -> mjx.Data:
        """Advance `frame_skip` substeps under `ctrl`; positions of the reached state."""
        data = self._data.replace(
            qpos=physics.qpos, qvel=physics.qvel, qacc_warmstart=physics.qacc_warmstart, ctrl=ctrl
        )
        data = jax.lax.fori_loop(
            0, self.settings.frame_skip, lambda _, d: mjx.step(self.mjx_model, d), data
        )
        # mjx.step leaves positions of the substep's start: bring them to the end.
        return mjx.kinematics(self.mjx_model, data)

    def kinematics(self, qpos: jax.Array, qvel: jax.Array) -> mjx.Data:
        """Body, geom and site positions of a configuration (what a reset needs)."""
        return mjx.kinematics(self.mjx_model, self._data.replace(qpos=qpos, qvel=qvel))

    @staticmethod
    def physics_of(data: mjx.Data) -> MjxPhysics:
        return MjxPhysics(qpos=data.qpos, qvel=data.qvel, qacc_warmstart=data.qacc_warmstart)

    def _observe(self, data: mjx.Data) -> tuple[jax.Array, jax.Array]:
        """(observation, features) of a reached state; envs that step the default way
        define it."""
        raise NotImplementedError

    def _step_physics(self, physics, action, key):
        """The default step: simulate under the action clipped to [-1, 1], then observe."""
        del key
        data = self.simulate(physics, jnp.clip(action, -1.0, 1.0))
        obs, features = self._observe(data)
        return self.physics_of(data), obs, features

    # --- frames -------------------------------------------------------------------

    def _markers(self, task: np.ndarray) -> list[Marker]:
        del task
        return []

    def _camera(self, data: mujoco.MjData) -> mujoco.MjvCamera | int | str:
        del data
        return -1  # the model's free camera

    def render(self, states: EnvState, width: int = 240, height: int = 240) -> np.ndarray:
        qpos = np.asarray(states.physics.qpos)
        tasks = np.asarray(states.task)
        if qpos.ndim != 2 or tasks.shape[0] != qpos.shape[0]:
            raise RenderError(
                f"render draws one env's episode, (T, nq) positions, got {qpos.shape}"
            )
        try:
            renderer = mujoco.Renderer(self.mj_model, height=height, width=width)
        except Exception as error:  # noqa: BLE001 - any GL failure means no frames here
            backend = os.environ.get("MUJOCO_GL", "glfw")
            raise RenderError(
                f"mujoco.Renderer cannot open an OpenGL context with MUJOCO_GL={backend} "
                f"(set MUJOCO_GL=egl before mujoco is imported): {error}"
            ) from error
        data = mujoco.MjData(self.mj_model)
        frames = np.empty((qpos.shape[0], height, width, 3), np.uint8)
        try:
            for t in range(qpos.shape[0]):
                data.qpos[:] = qpos[t]
                mujoco.mj_forward(self.mj_model, data)
                renderer.update_scene(data, camera=self._camera(data))
                scene = renderer.scene
                for marker in self._markers(tasks[t]):
                    if scene.ngeom >= scene.maxgeom:
                        break
                    mujoco.mjv_initGeom(
                        scene.geoms[scene.ngeom],
                        mujoco.mjtGeom.mjGEOM_SPHERE,
                        np.full(3, marker.radius),
                        np.asarray(marker.pos, np.float64),
                        np.eye(3).ravel(),
                        np.asarray(marker.rgba, np.float32),
                    )
                    scene.ngeom += 1
                frames[t] = renderer.render()
        finally:
            renderer.close()
        return frames


def tracking_camera(model: mujoco.MjModel, body: str, distance: float, elevation: float):
    """A camera that follows `body` from the side."""
    camera = mujoco.MjvCamera()
    camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
    camera.trackbodyid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    camera.distance = distance
    camera.elevation = elevation
    camera.azimuth = 90.0
    return camera
