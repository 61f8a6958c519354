"""Synthetic 12-lead ECG for demos, tests and the live monitor's default source.

Model: each beat is a sum of Gaussian waves (P, Q, R, S, T; McSharry-style ECGSYN
morphology). Every wave has a 3-D cardiac dipole vector (x: patient's left, y: inferior,
z: anterior); a lead sees the vector's projection onto its axis. Only leads I and II
and V1-V6 are projected (plus their own noise and baseline wander, as on a recorder
whose electrodes pick those up); III, aVR, aVL and aVF are then *computed* from I and II,
so Einthoven's and Goldberger's relations hold exactly, with noise included:
III = II - I, aVR = -(I + II)/2, aVL = I - II/2, aVF = II - I/2.

Determinism: every component is a function of the absolute sample index. Beats come from
one sequential RNG (so the schedule never depends on how it is consumed), noise from
per-second blocks seeded by (seed, block), wander/powerline/f-waves are closed-form in
time. Hence ``SyntheticStream`` chunks of any sizes concatenate to exactly the signal a
single ``synthesize`` call of the same length returns, and a stream can run unbounded.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .dataset import LEADS
from .errors import DataError

RHYTHMS = ("sinus", "af", "pvc")

# --- geometry -------------------------------------------------------------------------
# Independent channels that get projected: I, II, V1..V6. Frontal axes by hexaxial angle
# (0° = patient's left, +90° = inferior); precordial axes in the transverse plane
# (0° = left lateral, 90° = anterior) with gains for the chest electrodes' proximity,
# largest for V3-V4 as on real ECGs.
_FRONTAL_DEG = (0.0, 60.0)
_PRECORDIAL_DEG = (120.0, 95.0, 75.0, 55.0, 30.0, 0.0)
_PRECORDIAL_GAIN = (1.0, 1.4, 1.6, 1.6, 1.4, 1.1)


def _lead_axes() -> np.ndarray:
    rows = [(math.cos(math.radians(a)), math.sin(math.radians(a)), 0.0) for a in _FRONTAL_DEG]
    rows += [
        (g * math.cos(math.radians(a)), 0.0, g * math.sin(math.radians(a)))
        for a, g in zip(_PRECORDIAL_DEG, _PRECORDIAL_GAIN, strict=True)
    ]
    return np.array(rows)  # [8, 3]


# --- morphology -----------------------------------------------------------------------
# Normal beat, times in s relative to the R peak. Vectors in mV chosen so that lead II
# has P ≈ 0.18, R ≈ 1.0, T ≈ 0.3 mV; V1 rS, V3 RS (transition), V6 qRs. QRS ≈ 95 ms,
# P ≈ 90 ms, PR ≈ 165 ms.
_P = ((0.10, 0.15, 0.04), -0.165, 0.022)
_QRS = (
    ((-0.12, 0.04, 0.14), -0.030, 0.009),  # septal q: rightward and anterior
    ((0.85, 0.65, 0.35), 0.000, 0.0105),  # main R: leftward, inferior
    ((-0.15, -0.20, -0.60), 0.030, 0.011),  # terminal S: posterior, superior
)
_T_VEC = (0.24, 0.20, 0.12)
_QTC = 0.41  # s, Bazett-corrected QT
_QRS_ONSET = -0.046  # s
_PRE, _POST = 0.35, 0.9  # s of support around the R peak; waves are < 1e-5 outside
_BASE_AXIS_DEG = math.degrees(math.atan2(0.65, 0.85))
# Rhythm and interference constants every patient shares.
_HRV = 0.02  # random beat-to-beat RR variation (relative standard deviation)
_RSA = 0.04  # respiratory sinus arrhythmia (relative RR modulation amplitude)
_RESP_RATE = 15.0  # breaths per minute: drives RSA and part of the wander
_AF_IRREGULARITY = 0.25  # log-normal sigma of AF RR intervals
_POWERLINE_HZ = 50.0


@dataclass
class SyntheticPatient:
    """Configuration of one synthetic patient (all amplitudes in mV).

    Attributes:
        heart_rate: mean rate in beats per minute (30-220).
        rhythm: ``"sinus"``, ``"af"`` (irregular RR, no P, f-waves) or ``"pvc"``
            (sinus with occasional wide premature beats and a compensatory pause).
        noise_mv: white measurement noise, standard deviation.
        wander_mv: baseline wander amplitude (slow sinusoids < 0.5 Hz incl. respiration).
        emg_mv: bursty broadband muscle noise, standard deviation at burst peak.
        powerline_mv: mains interference amplitude (0 = off), at 50 Hz.
        pvc_rate: probability that a beat is followed by a PVC (rhythm ``"pvc"``).
        fwave_mv: AF fibrillatory wave amplitude.
        qrs_axis_deg: frontal QRS axis (normal -30..90).
        amplitude: overall scale of the cardiac waves.
        seed: non-negative seed; same seed and config → same signal.
        patient_id: free text for displays.
    """

    heart_rate: float = 72.0
    rhythm: str = "sinus"
    noise_mv: float = 0.01
    wander_mv: float = 0.05
    emg_mv: float = 0.0
    powerline_mv: float = 0.0
    pvc_rate: float = 0.1
    fwave_mv: float = 0.1
    qrs_axis_deg: float = 50.0
    amplitude: float = 1.0
    seed: int = 0
    patient_id: str = "synthetic"

    def __post_init__(self) -> None:
        if self.rhythm not in RHYTHMS:
            raise DataError(
                f"SyntheticPatient: field 'rhythm' is {self.rhythm!r}, expected {RHYTHMS}"
            )
        if not 30.0 <= self.heart_rate <= 220.0:
            raise DataError(
                f"SyntheticPatient: field 'heart_rate' is {self.heart_rate}, expected 30..220 bpm"
            )
        if not 0.0 <= self.pvc_rate <= 1.0:
            raise DataError(f"SyntheticPatient: field 'pvc_rate' is {self.pvc_rate}, expected 0..1")
        for name in ("noise_mv", "wander_mv", "emg_mv", "powerline_mv", "fwave_mv", "amplitude"):
            if not getattr(self, name) >= 0.0:
                raise DataError(f"SyntheticPatient: field {name!r} is negative, expected >= 0")
        if not isinstance(self.seed, (int, np.integer)) or self.seed < 0:
            raise DataError(f"SyntheticPatient: field 'seed' is {self.seed!r}, expected int >= 0")


class SyntheticStream:
    """Unbounded, deterministic 12-lead signal of one patient, read in chunks.

    ``read(n)`` returns the next ``n`` samples as float32 ``[12, n]`` mV; after each call
    ``last_beats`` lists ``(sample_index, kind)`` of the R peaks (``"N"`` normal, ``"V"``
    PVC) inside that chunk, usable as ground truth.
    """

    _N_CH = 8  # I, II, V1..V6

    def __init__(self, patient: SyntheticPatient, fs: int = 500) -> None:
        if isinstance(fs, bool) or not isinstance(fs, (int, np.integer)) or fs <= 0:
            raise DataError(f"SyntheticStream: fs is {fs!r}, expected a positive int in Hz")
        self.patient = patient
        self.fs = int(fs)
        self.position = 0  # next sample index
        self.last_beats: list[tuple[int, str]] = []
        p = patient
        rng = np.random.default_rng([int(p.seed), 1])  # patient-level constants
        axes = _lead_axes()
        rot = math.radians(p.qrs_axis_deg - _BASE_AXIS_DEG)
        c, s = math.cos(rot), math.sin(rot)
        frontal = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])

        def project(vec: tuple[float, ...] | np.ndarray) -> np.ndarray:
            return axes @ (frontal @ np.asarray(vec, dtype=float)) * p.amplitude

        self._p_proj = project(_P[0])
        self._qrs = [(project(v), ctr, sd) for v, ctr, sd in _QRS]
        self._t_proj = project(_T_VEC)
        # Ectopic focus: a random, mostly leftward-posterior or rightward direction.
        ang = rng.uniform(0, 2 * math.pi)
        pvc_vec = np.array([math.cos(ang), math.sin(ang), rng.uniform(-0.8, 0.8)]) * 1.4
        self._pvc = [
            (axes @ pvc_vec * p.amplitude, 0.0, 0.028),
            (axes @ (-0.45 * pvc_vec) * p.amplitude, 0.050, 0.030),
        ]
        self._pvc_t = axes @ (-0.3 * pvc_vec) * p.amplitude  # discordant T
        # Atrial fibrillation: V1 / inferior-dominant atrial vector, 4-9 Hz f-waves.
        atrial = np.array([0.1, 0.5, 0.86])
        self._f_proj = axes @ atrial * p.fwave_mv
        self._f_freq = rng.uniform(4.5, 8.5, size=3)
        self._f_phase = rng.uniform(0, 2 * math.pi, size=3)
        self._f_weight = np.array([0.6, 0.3, 0.2])
        self._f_mod = rng.uniform(0.05, 0.3, size=3)  # Hz: slow frequency modulation
        # Baseline wander: respiration plus two slower components, per channel.
        f_resp = _RESP_RATE / 60.0
        self._w_freq = np.stack(
            [
                np.full(self._N_CH, f_resp),
                rng.uniform(0.03, 0.12, self._N_CH),
                rng.uniform(0.12, 0.45, self._N_CH),
            ]
        )  # [3, 8]
        self._w_amp = rng.uniform(0.2, 0.6, size=(3, self._N_CH)) * p.wander_mv
        self._w_phase = rng.uniform(0, 2 * math.pi, size=(3, self._N_CH))
        self._pl_amp = rng.uniform(0.5, 1.0, self._N_CH) * p.powerline_mv
        self._pl_phase = float(rng.uniform(0, 2 * math.pi))
        self._emg_freq = rng.uniform(0.05, 0.15, self._N_CH)
        self._emg_phase = rng.uniform(0, 2 * math.pi, self._N_CH)
        self._resp_phase = float(rng.uniform(0, 2 * math.pi))
        # Beat schedule: (t_R, kind, rr_prev, amplitude factor), generated lazily in order.
        self._rr0 = 60.0 / p.heart_rate
        self._beat_rng = np.random.default_rng([int(p.seed), 2])
        self._beats: list[tuple[float, str, float, float]] = []
        self._t_normal = -1.0 - float(self._beat_rng.uniform(0, self._rr0))
        self._block: tuple[int, np.ndarray] | None = None

    # -- beat schedule -------------------------------------------------------------------
    def _resp(self, t: float) -> float:
        return math.sin(2 * math.pi * _RESP_RATE / 60.0 * t + self._resp_phase)

    def _add_normal(self, t: float, rr_prev: float) -> None:
        # Breathing rotates the heart slightly: +-5 % amplitude modulation.
        self._beats.append((t, "N", rr_prev, 1.0 + 0.05 * self._resp(t)))

    def _extend(self, t_until: float) -> None:
        p, rng, rr0 = self.patient, self._beat_rng, self._rr0
        while not self._beats or self._beats[-1][0] < t_until:
            t = self._t_normal
            if p.rhythm == "af":
                sigma = _AF_IRREGULARITY
                rr = rr0 * float(rng.lognormal(-0.5 * sigma**2, sigma))
                rr = min(max(rr, 0.25, 0.4 * rr0), 2.5 * rr0)
            else:
                rr = rr0 * (1.0 + _RSA * self._resp(t)) * (1.0 + _HRV * rng.standard_normal())
                rr = min(max(rr, 0.6 * rr0), 1.6 * rr0)
            if p.rhythm == "pvc" and rng.uniform() < p.pvc_rate:
                coupling = float(rng.uniform(0.55, 0.7))
                self._beats.append((t + coupling * rr, "V", coupling * rr, 1.0))
                rr *= 2.0  # full compensatory pause: the sinus node is not reset
            self._t_normal = t + rr
            self._add_normal(self._t_normal, rr)

    # -- rendering ---------------------------------------------------------------------
    @staticmethod
    def _gauss(dt: np.ndarray, center: float, sd_left: float, sd_right: float) -> np.ndarray:
        sd = np.where(dt < center, sd_left, sd_right) if sd_left != sd_right else sd_left
        return np.exp(-0.5 * ((dt - center) / sd) ** 2)

    def _beat_waves(
        self, kind: str, rr_prev: float
    ) -> list[tuple[np.ndarray, float, float, float]]:
        """(projection [8], center, sd_left, sd_right) of every wave of one beat."""
        if kind == "V":
            waves = [(proj, ctr, sd, sd) for proj, ctr, sd in self._pvc]
            waves.append((self._pvc_t, 0.30, 0.07, 0.05))
            return waves
        scale = math.sqrt(min(max(rr_prev, 0.3), 2.0))  # Bazett: QT ∝ sqrt(RR)
        sd_left, sd_right = 0.06 * scale, 0.04 * scale
        t_peak = _QRS_ONSET + _QTC * scale - 2.2 * sd_right
        waves = [] if self.patient.rhythm == "af" else [(self._p_proj, _P[1], _P[2], _P[2])]
        waves += [(proj, ctr, sd, sd) for proj, ctr, sd in self._qrs]
        waves.append((self._t_proj, t_peak, sd_left, sd_right))
        return waves

    def _render_beats(self, a: int, b: int, out: np.ndarray) -> None:
        fs = self.fs
        self._extend((b - 1) / fs + _PRE)
        # Beats that ended before this chunk can never matter again (reads are sequential).
        while self._beats and self._beats[0][0] + _POST < a / fs:
            self._beats.pop(0)
        self.last_beats = []
        for t_r, kind, rr_prev, gain in self._beats:
            lo = max(a, math.ceil((t_r - _PRE) * fs))
            hi = min(b, math.floor((t_r + _POST) * fs) + 1)
            if lo >= hi:
                continue
            peak = round(t_r * fs)
            if a <= peak < b:
                self.last_beats.append((peak, kind))
            dt = np.arange(lo, hi, dtype=np.float64) / fs - t_r
            seg = out[:, lo - a : hi - a]
            for proj, center, sd_l, sd_r in self._beat_waves(kind, rr_prev):
                seg += proj[:, None] * (gain * self._gauss(dt, center, sd_l, sd_r))[None, :]

    def _noise_block(self, k: int) -> np.ndarray:
        # One second of (white, emg) unit noise, seeded by its block index.
        if self._block is None or self._block[0] != k:
            rng = np.random.default_rng([int(self.patient.seed), 3, k])
            self._block = (k, rng.standard_normal((2, self._N_CH, self.fs)))
        return self._block[1]

    def _render_noise(self, a: int, b: int, out: np.ndarray, t: np.ndarray) -> None:
        p, fs = self.patient, self.fs
        if p.noise_mv > 0 or p.emg_mv > 0:
            unit = np.empty((2, self._N_CH, b - a))
            for k in range(a // fs, (b - 1) // fs + 1):
                lo, hi = max(a, k * fs), min(b, (k + 1) * fs)
                unit[:, :, lo - a : hi - a] = self._noise_block(k)[:, :, lo - k * fs : hi - k * fs]
            out += p.noise_mv * unit[0]
            if p.emg_mv > 0:
                # Muscle bursts: a slow, peaky envelope on broadband noise.
                arg = 2 * np.pi * self._emg_freq[:, None] * t + self._emg_phase[:, None]
                env = (0.5 + 0.5 * np.sin(arg)) ** 4
                out += p.emg_mv * env * unit[1]
        if p.wander_mv > 0:
            for k in range(self._w_freq.shape[0]):
                arg = 2 * np.pi * self._w_freq[k][:, None] * t + self._w_phase[k][:, None]
                out += self._w_amp[k][:, None] * np.sin(arg)
        if p.powerline_mv > 0:
            out += self._pl_amp[:, None] * np.sin(2 * np.pi * _POWERLINE_HZ * t + self._pl_phase)
        if p.rhythm == "af" and p.fwave_mv > 0:
            f = np.zeros_like(t)
            for w, f0, ph, fm in zip(
                self._f_weight, self._f_freq, self._f_phase, self._f_mod, strict=True
            ):
                # Frequency-modulated sinusoids: irregular, non-repeating f-waves.
                f += w * np.sin(2 * np.pi * f0 * t + 2.0 * np.sin(2 * np.pi * fm * t) + ph)
            out += self._f_proj[:, None] * f[None, :]

    def read(self, n_samples: int) -> np.ndarray:
        """The next ``n_samples`` samples as float32 ``[12, n_samples]`` mV."""
        if isinstance(n_samples, bool) or not isinstance(n_samples, (int, np.integer)):
            raise DataError(f"SyntheticStream.read: n_samples is {n_samples!r}, expected an int")
        if n_samples < 0:
            raise DataError(f"SyntheticStream.read: n_samples is {n_samples}, expected >= 0")
        a, b = self.position, self.position + int(n_samples)
        ch = np.zeros((self._N_CH, b - a))
        if b > a:
            t = np.arange(a, b, dtype=np.float64) / self.fs
            self._render_beats(a, b, ch)
            self._render_noise(a, b, ch, t)
        else:
            self.last_beats = []
        self.position = b
        lead_i, lead_ii = ch[0], ch[1]
        leads = np.empty((len(LEADS), b - a), dtype=np.float64)
        leads[0], leads[1] = lead_i, lead_ii
        leads[2] = lead_ii - lead_i  # III (Einthoven)
        leads[3] = -(lead_i + lead_ii) / 2  # aVR (Goldberger)
        leads[4] = lead_i - lead_ii / 2  # aVL
        leads[5] = lead_ii - lead_i / 2  # aVF
        leads[6:] = ch[2:]
        return leads.astype(np.float32)


def synthesize(patient: SyntheticPatient, seconds: float, fs: int = 500) -> np.ndarray:
    """``seconds`` of ``patient``'s ECG from time 0 as float32 ``[12, round(seconds*fs)]`` mV."""
    if not seconds >= 0:
        raise DataError(f"synthesize: seconds is {seconds!r}, expected >= 0")
    return SyntheticStream(patient, fs).read(round(seconds * fs))


def make_windows(card: Any, n: int, seed: int = 0) -> np.ndarray:
    """``n`` windows of :func:`make_patients`'s cohort as float32 ``[n, 12, samples]`` at the
    rate of ``card`` (a ModelCard: its ``window_samples`` and ``sampling_rate``), synthesised
    at 500 Hz: the gates', the doctor's and the benchmarks' input."""
    from .signal import resample

    w, fs = int(card.window_samples), int(card.sampling_rate)
    wins = []
    for p in make_patients(n, seed):
        sig = synthesize(p, w / fs, fs=500)
        wins.append((resample(sig, 500, fs) if fs != 500 else sig)[:, :w])
    return np.stack(wins).astype(np.float32)


def make_patients(n: int, seed: int = 0) -> list[SyntheticPatient]:
    """A varied, reproducible cohort: mostly sinus, some AF and PVC, spread of rates,
    axes, amplitudes and noise levels, so a monitor demo shows distinguishable patients."""
    if n < 0:
        raise DataError(f"make_patients: n is {n}, expected >= 0")
    rng = np.random.default_rng([int(seed), 7])
    patients = []
    for i in range(n):
        rhythm = str(rng.choice(RHYTHMS, p=[0.6, 0.2, 0.2]))
        lo, hi = {"sinus": (55, 100), "af": (70, 130), "pvc": (55, 95)}[rhythm]
        patients.append(
            SyntheticPatient(
                heart_rate=round(float(rng.uniform(lo, hi)), 1),
                rhythm=rhythm,
                noise_mv=float(rng.uniform(0.005, 0.03)),
                wander_mv=float(rng.uniform(0.02, 0.15)),
                emg_mv=float(rng.choice([0.0, rng.uniform(0.01, 0.04)])),
                qrs_axis_deg=float(rng.uniform(-15, 80)),
                amplitude=float(rng.uniform(0.7, 1.3)),
                pvc_rate=float(rng.uniform(0.05, 0.2)),
                seed=int(rng.integers(0, 2**31 - 1)),
                patient_id=f"syn-{i:03d}",
            )
        )
    return patients
