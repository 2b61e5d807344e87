namespace Mae.MLNet.Training;

/// <summary>
/// The reference's per-iteration schedule (<c>util/lr_sched.py</c> <c>adjust_learning_rate</c>), evaluated at a
/// fractional epoch <c>e = step / steps_per_epoch + epoch</c>: linear warmup <c>lr·e/warmup</c> for
/// <c>e &lt; warmup</c>, then half-cycle cosine <c>min + (lr − min)·½·(1 + cos(π·(e − warmup)/(epochs − warmup)))</c>.
/// </summary>
internal static class MaeLrSchedule
{
    public static double At(double epoch, double peakLr, double minLr, double warmupEpochs, double epochs)
    {
        if (epoch < warmupEpochs) return peakLr * epoch / warmupEpochs;
        return minLr + (peakLr - minLr) * 0.5 * (1.0 + Math.Cos(Math.PI * (epoch - warmupEpochs) / (epochs - warmupEpochs)));
    }
}

/// <summary>
/// The schedule a run follows when a time box may move its end (<see cref="MaeTimeBudget.TimePlan"/>): the warm-up as
/// planned, then the half-cycle cosine, whose end is re-fitted at epoch ends to the epochs that still fit. A re-fit at
/// epoch <c>b</c> keeps the lr continuous: the cosine goes on from the phase it had reached at <c>b</c>
/// (<see cref="CosineFromProgress"/>, 0 → 1) and reaches the floor at the new <see cref="Epochs"/>, as if the remaining
/// half-cycle were stretched or squeezed. Never re-fitted (<see cref="CosineFromEpoch"/> null) it is the reference's
/// schedule, evaluated by the same expression (<see cref="MaeLrSchedule.At"/>), so runs without a box stay bit for bit.
/// Stored in the checkpoints of a time-boxed run: a resume continues it.
/// </summary>
internal sealed record MaeLrPlan
{
    public required int Epochs { get; init; }
    public required double WarmupEpochs { get; init; }
    /// <summary>The epoch of the last re-fit (null: none).</summary>
    public double? CosineFromEpoch { get; init; }
    /// <summary>The cosine's phase at <see cref="CosineFromEpoch"/>, in [0, 1].</summary>
    public double CosineFromProgress { get; init; }

    public double At(double epoch, double peakLr, double minLr)
    {
        if (CosineFromEpoch is null || epoch < WarmupEpochs) return MaeLrSchedule.At(epoch, peakLr, minLr, WarmupEpochs, Epochs);
        return minLr + (peakLr - minLr) * 0.5 * (1.0 + Math.Cos(Math.PI * Progress(epoch)));
    }

    /// <summary>The cosine's phase at <paramref name="epoch"/> (≥ the warm-up), 0 at its start, 1 at <see cref="Epochs"/>.</summary>
    double Progress(double epoch) => CosineFromEpoch is double b
        ? CosineFromProgress + (1 - CosineFromProgress) * (epoch - b) / (Epochs - b)
        : (epoch - WarmupEpochs) / (Epochs - WarmupEpochs);

    /// <summary>
    /// The plan that ends at <paramref name="epochs"/> instead, re-fitted at the end of epoch <paramref name="at"/>
    /// (a whole number of epochs done, <paramref name="at"/> ≤ <paramref name="epochs"/>; equal: the run ends there).
    /// Inside the warm-up the cosine has not begun: only its end moves (and stays past the warm-up).
    /// </summary>
    public MaeLrPlan EndingAt(int at, int epochs)
    {
        if (at < 0 || at > epochs) throw new ArgumentOutOfRangeException(nameof(epochs), epochs, $"A re-fit at epoch {at} must end at or after it; got {epochs}.");
        if (epochs == Epochs) return this;
        if (at < WarmupEpochs)
            return this with { Epochs = Math.Max(epochs, (int)Math.Floor(WarmupEpochs) + 1), CosineFromEpoch = WarmupEpochs, CosineFromProgress = 0 };
        return this with { Epochs = epochs, CosineFromEpoch = at, CosineFromProgress = Math.Min(1, Progress(at)) };
    }
}
