namespace Mae.MLNet.Training;

/// <summary>Thrown when a batch's loss is NaN or infinite; training stops as the reference's
/// <c>if not math.isfinite(loss_value)</c> does.</summary>
public sealed class MaeNonFiniteLossException : InvalidOperationException
{
    public MaeNonFiniteLossException(int epoch, long step, long globalStep, double loss)
        : base($"Loss is {loss} at epoch {epoch}, step {step} (global step {globalStep}); stopping training. " +
               "Lower the learning rate, check the input data for extreme values, or use fp32.")
    {
        Epoch = epoch;
        Step = step;
        GlobalStep = globalStep;
        Loss = loss;
    }

    public int Epoch { get; }
    public long Step { get; }
    public long GlobalStep { get; }
    public double Loss { get; }
}
