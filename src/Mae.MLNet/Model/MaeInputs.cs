using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>Argument checks run before any model computation, so a user sees a .NET message, not libtorch's.</summary>
internal static class MaeInputs
{
    /// <summary>Largest rows-per-forward-pass accepted by the featurizer and classifier options: buffers of
    /// BatchSize images are allocated up front, so the bound keeps a typo from allocating gigabytes.</summary>
    public const int MaxInferenceBatchSize = 4096;

    /// <summary>Throws naming <paramref name="option"/> unless 1 ≤ <paramref name="batchSize"/> ≤ <see cref="MaxInferenceBatchSize"/>.</summary>
    public static void CheckInferenceBatchSize(int batchSize, string option)
    {
        if (batchSize < 1 || batchSize > MaxInferenceBatchSize)
            throw new ArgumentOutOfRangeException(option, batchSize,
                $"{option} must be between 1 and {MaxInferenceBatchSize} rows per forward pass; got {batchSize}.");
    }

    public static void CheckImages(Tensor? images, MaeConfig config, string name)
    {
        if (images is null) throw new ArgumentNullException(name);
        string expected = $"[N, {config.InChannels}, {config.ImageSize}, {config.ImageSize}]";
        if (images.IsInvalid) throw new ArgumentException($"{name}: the tensor has been disposed.", name);
        if (images.dim() != 4)
            throw new ArgumentException(
                $"{name} must be a 4-D image batch {expected} (N, C, H, W); got a {images.dim()}-D tensor of shape {Shape(images)}.", name);
        if (images.shape[0] < 1) throw new ArgumentException($"{name} is an empty batch (N = 0); expected {expected} with N ≥ 1.", name);
        if (images.shape[1] != config.InChannels)
            throw new ArgumentException(
                $"{name} has {images.shape[1]} channels; the model expects {config.InChannels} ({expected}), got shape {Shape(images)}.", name);
        if (images.shape[2] != config.ImageSize || images.shape[3] != config.ImageSize)
            throw new ArgumentException(
                $"{name} is {images.shape[2]}×{images.shape[3]} pixels; the model expects {config.ImageSize}×{config.ImageSize} ({expected}), got shape {Shape(images)}.", name);
        if (!images.is_floating_point())
            throw new ArgumentException($"{name} must hold floating-point pixels; got dtype {images.dtype}.", name);
        CheckFinite(images, name);
    }

    public static void CheckFinite(Tensor t, string name)
    {
        if (ValueChecksDeferred(t)) return;
        using var finite = t.isfinite();
        using var all = finite.all();
        if (!all.item<bool>())
        {
            using var nan = t.isnan();
            using var nanCount = nan.sum();
            using var notFinite = finite.logical_not();
            using var badCount = notFinite.sum();
            throw new ArgumentException(
                $"{name} contains non-finite values ({nanCount.item<long>()} NaN, {badCount.item<long>() - nanCount.item<long>()} infinite); expected finite numbers.", name);
        }
    }

    [ThreadStatic] static bool valueChecksDeferred;

    /// <summary>Whether a value check on <paramref name="t"/> is deferred (see <see cref="DeferValueChecksOnDevice"/>).</summary>
    internal static bool ValueChecksDeferred(Tensor t) => valueChecksDeferred && t.device_type != TorchSharp.DeviceType.CPU;

    /// <summary>
    /// Until disposed, <see cref="CheckFinite"/> skips tensors on an accelerator on this thread: reading its verdict
    /// back would make the host wait for the device at every call. The training engine opens this around each step,
    /// where a non-finite input shows up as a non-finite loss, which it checks on the device and reports
    /// (<c>MaeNonFiniteLossException</c>) at the step it happened. Shapes and dtypes are still checked.
    /// </summary>
    internal static IDisposable DeferValueChecksOnDevice()
    {
        bool before = valueChecksDeferred;
        valueChecksDeferred = true;
        return new Restore(before);
    }

    sealed class Restore(bool before) : IDisposable
    {
        public void Dispose() => valueChecksDeferred = before;
    }

    public static void CheckMaskRatio(double maskRatio, string name)
    {
        if (!(maskRatio >= 0 && maskRatio < 1))
            throw new ArgumentOutOfRangeException(name, maskRatio, $"The mask ratio must be in [0, 1); got {maskRatio}.");
    }

    public static void CheckNoise(Tensor? noise, long batch, int numPatches, string name)
    {
        if (noise is null) return;
        if (noise.dim() != 2 || noise.shape[0] != batch || noise.shape[1] != numPatches)
            throw new ArgumentException(
                $"{name} must have shape [N, L] = [{batch}, {numPatches}] (one value per patch; small values are kept); got {Shape(noise)}.", name);
        if (!noise.is_floating_point()) throw new ArgumentException($"{name} must be floating point; got dtype {noise.dtype}.", name);
        CheckFinite(noise, name);
    }

    public static void CheckShape(Tensor? t, string name, string what, params long[] expected)
    {
        if (t is null) throw new ArgumentNullException(name);
        if (!t.shape.SequenceEqual(expected))
            throw new ArgumentException($"{name} must be {what} of shape {Shape(expected)}; got {Shape(t)}.", name);
    }

    public static string Shape(Tensor t) => Shape(t.shape);
    public static string Shape(long[] shape) => "[" + string.Join(", ", shape) + "]";
}
