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
