using System.Diagnostics;

namespace Mae.MLNet.Training;

public static partial class MaeTimeBudget
{
    /// <summary>
    /// What fits in a time box (<c>mae pretrain/finetune --minutes M</c>): from a measured time per training step, the
    /// epochs that fit in <see cref="MaeTimeBudget.Usable"/> of the box (capped by the recipe's), and the warm-up scaled with them so the
    /// lr schedule (linear warm-up, then half-cycle cosine to the floor) runs its whole course inside the box. The step
    /// time comes from a short run (pre-training: <c>MaePretrainer.CalibrateStepSeconds</c>; any run: <see cref="MaeTimeBudget.StepTimer"/>).
    /// </summary>
    /// <param name="Minutes">The box.</param>
    /// <param name="SecondsPerStep">The measured time of one training step.</param>
    /// <param name="StepsPerEpoch">Steps of one epoch (images / batch, the last partial batch dropped).</param>
    /// <param name="Epochs">Epochs planned.</param>
    /// <param name="WarmupEpochs">Warm-up planned: the recipe's warm-up fraction of <paramref name="Epochs"/>.</param>
    /// <param name="Cap">The most epochs allowed (the recipe's or the user's), reached when <paramref name="Capped"/>.</param>
    /// <param name="Capped">More epochs would have fitted.</param>
    /// <param name="OverBudget">Even one epoch takes longer than the box: the plan is one epoch anyway.</param>
    public sealed record TimePlan(double Minutes, double SecondsPerStep, long StepsPerEpoch, int Epochs, double WarmupEpochs, int Cap, bool Capped, bool OverBudget)
    {
        /// <summary>When the plan was made (<see cref="Plan"/>: now); the epochs are to end by <see cref="DeadlineUtc"/>.</summary>
        public DateTime StartUtc { get; init; }

        /// <summary>The end of the training time the plan fits the epochs into: <see cref="StartUtc"/> + <see cref="Usable"/> × the box.
        /// A run given this plan (<see cref="MaeTrainingOptions.TimePlan"/>) re-fits its epochs to it as it goes.</summary>
        public DateTime DeadlineUtc => StartUtc + TimeSpan.FromSeconds(Usable * Minutes * 60);

        /// <summary>Work outside the steps per epoch that the plan counted (seconds).</summary>
        public double ExtraSecondsPerEpoch { get; init; }

        /// <summary>Planned training time: epochs × (steps × seconds per step + the extra per epoch).</summary>
        public TimeSpan Estimated => TimeSpan.FromSeconds((SecondsPerStep * StepsPerEpoch + ExtraSecondsPerEpoch) * Epochs);

        /// <summary>One line for the user.</summary>
        public string Describe(int batchSize) =>
            $"plan: {SecondsPerStep * 1000:F0} ms per step of {batchSize} images ({batchSize / SecondsPerStep:F0} img/s measured) × {StepsPerEpoch} steps per epoch" +
            (ExtraSecondsPerEpoch > 0 ? $" + {ExtraSecondsPerEpoch:F1} s of validation per epoch" : "") +
            $" → {Epochs} epoch(s), {WarmupEpochs:0.##} of warm-up, about {Estimated:hh\\:mm\\:ss} of training in the {Minutes:0.##}-minute box" +
            (Capped ? $" (capped at {Cap} epochs)" : "") +
            (OverBudget ? $"; warning: one epoch takes about {TimeSpan.FromSeconds(SecondsPerStep * StepsPerEpoch + ExtraSecondsPerEpoch):hh\\:mm\\:ss}, longer than the box" : "");
    }
}

public static partial class MaeTimeBudget
{
    /// <summary>Share of the box given to training steps; the rest covers start-up, epoch ends, checkpoints and the
    /// speed's drift on a shared machine.</summary>
    public const double Usable = 0.9;

    /// <summary>
    /// The plan for <paramref name="minutes"/> given the measured <paramref name="secondsPerStep"/>: epochs =
    /// floor(<see cref="Usable"/> × box / (seconds per step × steps per epoch + <paramref name="extraSecondsPerEpoch"/>)),
    /// at least 1 and at most <paramref name="maxEpochs"/>; warm-up = epochs × <paramref name="warmupFraction"/> (the
    /// recipe's warm-up / epochs). The extra time per epoch is work outside the steps, such as a validation pass.
    /// </summary>
    public static MaeTimeBudget.TimePlan Plan(double minutes, double secondsPerStep, long stepsPerEpoch, int maxEpochs, double warmupFraction,
        double extraSecondsPerEpoch = 0)
    {
        if (!(minutes > 0) || !double.IsFinite(minutes)) throw new ArgumentOutOfRangeException(nameof(minutes), minutes, $"The time box must be a finite number of minutes > 0; got {minutes}.");
        if (!(secondsPerStep > 0) || !double.IsFinite(secondsPerStep))
            throw new ArgumentOutOfRangeException(nameof(secondsPerStep), secondsPerStep, $"The measured time per step must be a finite number of seconds > 0; got {secondsPerStep}.");
        if (stepsPerEpoch < 1) throw new ArgumentOutOfRangeException(nameof(stepsPerEpoch), stepsPerEpoch, $"An epoch must have at least one step; got {stepsPerEpoch}.");
        if (maxEpochs < 1) throw new ArgumentOutOfRangeException(nameof(maxEpochs), maxEpochs, $"The epoch cap must be ≥ 1; got {maxEpochs}.");
        if (!(warmupFraction >= 0 && warmupFraction <= 1))
            throw new ArgumentOutOfRangeException(nameof(warmupFraction), warmupFraction, $"The warm-up fraction must be in [0, 1]; got {warmupFraction}.");
        if (!(extraSecondsPerEpoch >= 0) || !double.IsFinite(extraSecondsPerEpoch))
            throw new ArgumentOutOfRangeException(nameof(extraSecondsPerEpoch), extraSecondsPerEpoch, $"The extra time per epoch must be a finite number of seconds ≥ 0; got {extraSecondsPerEpoch}.");
        double epochSeconds = secondsPerStep * stepsPerEpoch + extraSecondsPerEpoch;
        double fit = Math.Floor(Usable * minutes * 60 / epochSeconds);
        int epochs = (int)Math.Clamp(fit, 1, maxEpochs);
        return new MaeTimeBudget.TimePlan(minutes, secondsPerStep, stepsPerEpoch, epochs, epochs * warmupFraction, maxEpochs, fit > maxEpochs, fit < 1)
            { ExtraSecondsPerEpoch = extraSecondsPerEpoch, StartUtc = DateTime.UtcNow };
    }

    /// <summary>
    /// The re-fit at the end of epoch <paramref name="done"/> of a time-boxed run, from the pace of the last epochs
    /// (<paramref name="secondsPerEpoch"/>: <see cref="RecentPace"/>, measured end to end) and the time left. A plan that
    /// would overrun is squeezed to the whole epochs that fit (<paramref name="done"/> itself when none does: the run ends
    /// now); one with room for at least one more epoch inside <see cref="StretchShare"/> of the time left is stretched to
    /// the epochs that fit there; in between it stays, so a pace that wobbles around an epoch boundary does not move the
    /// end back and forth. At most <paramref name="maxEpochs"/>; no pace measured: <paramref name="planned"/> unchanged.
    /// </summary>
    internal static int Refit(int done, double secondsPerEpoch, double secondsLeft, int maxEpochs, int planned)
    {
        if (!(secondsPerEpoch > 0) || !double.IsFinite(secondsPerEpoch)) return planned;
        double room = Math.Max(0, secondsLeft) / secondsPerEpoch;   // epochs that fit in the time left
        int remaining = planned - done;
        double target = remaining > room ? done + Math.Floor(room)
            : remaining + 1 <= StretchShare * room ? done + Math.Floor(StretchShare * room)
            : planned;
        return (int)Math.Clamp(target, done, Math.Max(done, maxEpochs));
    }

    /// <summary>The share of the time left a re-fit may stretch the plan into (the rest is the band where it stays).</summary>
    internal const double StretchShare = 0.95;

    /// <summary>The pace a re-fit plans with: the median time of the last (up to) 3 epochs, so one slow or fast epoch
    /// does not move the end, while a lasting change in load does within two epochs.</summary>
    internal static double RecentPace(IReadOnlyList<double> epochSeconds)
    {
        var last = epochSeconds.Skip(Math.Max(0, epochSeconds.Count - 3)).Order().ToArray();
        return last.Length == 0 ? double.NaN : last.Length == 2 ? 0.5 * (last[0] + last[1]) : last[last.Length / 2];
    }

    /// <summary>
    /// Seconds per step from the timestamps of consecutive step reports, the first <paramref name="skip"/> steps
    /// (start-up, first decode) left out: the median gap, so one stall of a shared machine does not set the plan.
    /// </summary>
    public static double SecondsPerStep(IReadOnlyList<double> stepEndSeconds, int skip)
    {
        ArgumentNullException.ThrowIfNull(stepEndSeconds);
        var gaps = new List<double>();
        for (int i = Math.Max(skip, 1); i < stepEndSeconds.Count; i++) gaps.Add(stepEndSeconds[i] - stepEndSeconds[i - 1]);
        if (gaps.Count == 0)
            throw new ArgumentException($"At least {Math.Max(skip, 1) + 1} step reports are needed to measure a step; got {stepEndSeconds.Count}.", nameof(stepEndSeconds));
        gaps.Sort();
        return gaps.Count % 2 == 1 ? gaps[gaps.Count / 2] : 0.5 * (gaps[gaps.Count / 2 - 1] + gaps[gaps.Count / 2]);
    }

    /// <summary>Timestamps of step reports (end-of-epoch extras ignored) until it holds <c>want</c> of them.</summary>
    /// <remarks>An <see cref="IProgress{T}"/> of the base record, so it serves pre-training and fine-tuning alike.</remarks>
    public sealed class StepTimer(int want) : IProgress<MaeTrainingProgress>
    {
        readonly Stopwatch clock = Stopwatch.StartNew();
        readonly List<double> times = new();
        public IReadOnlyList<double> Times => times;
        /// <summary>Raised once, when <c>want</c> timestamps are in.</summary>
        public event Action? Full;

        public void Report(MaeTrainingProgress value)
        {
            if (value.EndOfEpoch || times.Count >= want) return;
            times.Add(clock.Elapsed.TotalSeconds);
            if (times.Count == want) Full?.Invoke();
        }
    }
}
