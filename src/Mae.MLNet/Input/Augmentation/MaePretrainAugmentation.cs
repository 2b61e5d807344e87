using Mae.MLNet.Model;
using TorchSharp;
using static TorchSharp.torch;

namespace Mae.MLNet.Input;

/// <summary>
/// The MAE pre-training augmentation applied to a whole batch on its own device: per-sample RandomResizedCrop
/// (bicubic), horizontal flip, per-channel <c>Normalize(mean, std)</c>. Crop boxes and flips are drawn on the host
/// with libtorch's global CPU generator (<see cref="RandomResizedCropSampler"/>); the crop + resize + flip of all
/// samples is two batched matrix products on the device (<see cref="CropResampler.SeparablePilBicubic"/>). With
/// <see cref="MaeAugmentationOptions.RandAugment"/> or random erasing set (the fine-tuning recipe), the crops are rounded
/// to 8 bits and finished on the CPU by <see cref="PostCropAugmentation"/>, the code the file sources' workers run.
/// Input: [N, C, H, W] floating point pixels in [0, 1] (ToTensor units), H and W ≥ the output size.
/// Output: [N, C, S, S], same dtype and device.
/// </summary>
public sealed class MaePretrainAugmentation : IBatchTransform
{
    /// <summary>PIL's bicubic parameter (libtorch and OpenCV use −0.75).</summary>
    public const double PilBicubicA = -0.5;

    private readonly PixelNormalization _normalization;

    public MaeAugmentationOptions Options { get; }

    public MaePretrainAugmentation(MaeAugmentationOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options.Validate();
        _normalization = options.ResolvedNormalization();
    }

    /// <summary>[C, OutputSize, OutputSize]; lets the trainer reject images of the wrong channel count or smaller than
    /// the crop before training starts.</summary>
    public MaeImageShape? OutputShape(MaeImageShape input)
    {
        int s = Options.OutputSize;
        if (input.Channels != Options.Channels)
            throw new ArgumentException($"The images have {input.Channels} channels; the augmentation expects {Options.Channels}.");
        if (input.Height < s || input.Width < s)
            throw new ArgumentException(
                $"The images are {input.Height}×{input.Width} pixels, smaller than the {s}×{s} output crop; expected H, W ≥ {s}. Resize the images first or lower OutputSize.");
        return new MaeImageShape(Options.Channels, s, s);
    }

    /// <summary>Draws crop boxes and flips (global generator) and applies them.</summary>
    public Tensor Apply(Tensor batch)
    {
        CheckBatch(batch, nameof(batch));
        int n = (int)batch.shape[0];
        var (boxes, flips) = RandomResizedCropSampler.Sample(n, (int)batch.shape[2], (int)batch.shape[3], Options);
        double[]? u = null;
        int draws = PostCropAugmentation.Draws(Options);
        if (draws > 0)
            using (var t = rand(new long[] { n, draws }, dtype: ScalarType.Float64, device: CPU))
                u = t.data<double>().ToArray();
        return ApplyCore(batch, boxes, flips, u);
    }

    /// <summary>Applies the given crop boxes and flips (one per sample) and, with RandAugment or erasing on, the
    /// per-sample uniforms <paramref name="u"/> ([N × PostCropAugmentation.Draws] row-major) — deterministic, draws nothing.</summary>
    internal Tensor Apply(Tensor batch, IReadOnlyList<CropBox> boxes, IReadOnlyList<bool> flips, double[]? u = null)
    {
        CheckBatch(batch, nameof(batch));
        ArgumentNullException.ThrowIfNull(boxes);
        ArgumentNullException.ThrowIfNull(flips);
        long n = batch.shape[0];
        int height = (int)batch.shape[2], width = (int)batch.shape[3];
        if (boxes.Count != n) throw new ArgumentException($"Expected one crop box per sample ({n}); got {boxes.Count}.", nameof(boxes));
        if (flips.Count != n) throw new ArgumentException($"Expected one flip flag per sample ({n}); got {flips.Count}.", nameof(flips));
        for (int k = 0; k < boxes.Count; k++)
        {
            var b = boxes[k];
            if (b.Height < 1 || b.Width < 1 || b.Top < 0 || b.Left < 0 || b.Top + b.Height > height || b.Left + b.Width > width)
                throw new ArgumentException($"Crop box {k} {b} does not lie inside the {height}×{width} image with a positive size.", nameof(boxes));
        }
        int draws = PostCropAugmentation.Draws(Options);
        if ((u?.Length ?? 0) != n * draws)
            throw new ArgumentException($"Expected {n} × {draws} uniforms for RandAugment / erasing; got {u?.Length ?? 0}.", nameof(u));
        return ApplyCore(batch, boxes, flips, u);
    }

    private Tensor ApplyCore(Tensor batch, IReadOnlyList<CropBox> boxes, IReadOnlyList<bool> flips, double[]? u)
    {
        using var scope = NewDisposeScope();
        var input = batch;
        var computeType = batch.dtype is ScalarType.Float32 or ScalarType.Float64 ? batch.dtype : ScalarType.Float32;
        if (computeType != batch.dtype) input = batch.to(computeType);
        int size = Options.OutputSize;
        bool allFull = boxes.All(b => b.Top == 0 && b.Left == 0 && b.Height == size && b.Width == size)
            && batch.shape[2] == size && batch.shape[3] == size;
        Tensor x;
        if (allFull) x = FlipRows(input, flips); // identity crop: resampling would reproduce the input exactly
        else if (Options.Resampler == CropResampler.PerSampleInterpolate) x = PerSampleInterpolate(input, boxes, flips, size);
        else x = SeparableResample(input, boxes, flips, size);
        if (Options.ClampToUnitRange) x = x.ClampTo(0.0, 1.0);
        if (PostCropAugmentation.Active(Options)) x = Finish(x, u!).to(computeType, x.device);
        else if (!_normalization.IsIdentity) x = _normalization.Apply(x);
        if (x.dtype != batch.dtype) x = x.to(batch.dtype);
        return x.MoveToOuterDisposeScope();
    }

    /// <summary>Rounds the [0, 1] crops to 8 bits (half up, as PIL's resampling rounds) and runs RandAugment, the
    /// normalisation and erasing per sample on the CPU; returns [N, C, S, S] float32 on the CPU.</summary>
    private unsafe Tensor Finish(Tensor x, double[] u)
    {
        int n = (int)x.shape[0], c = (int)x.shape[1], s = (int)x.shape[2];
        int pixels = s * s, draws = PostCropAugmentation.Draws(Options);
        float[] input;
        using (var cpu = x.to(ScalarType.Float32).cpu().contiguous()) input = cpu.data<float>().ToArray();
        var output = new float[input.Length];
        var bytes = new byte[pixels * c];
        var post = new PostCropAugmentation(Options);
        fixed (byte* b = bytes)
        fixed (float* o = output)
            for (int k = 0; k < n; k++)
            {
                for (int ch = 0; ch < c; ch++)
                    for (int i = 0; i < pixels; i++)
                        b[i * c + ch] = (byte)(Math.Clamp(input[((long)k * c + ch) * pixels + i], 0f, 1f) * 255f + 0.5f);
                post.Apply(new ByteImage(b, s, s, c, c), true, u.AsSpan(k * draws, draws), o + (long)k * c * pixels);
            }
        return tensor(output, new long[] { n, c, s, s });
    }

    private static Tensor FlipRows(Tensor x, IReadOnlyList<bool> flips)
    {
        if (!flips.Any(f => f)) return x.alias();
        var mask = tensor(flips.ToArray()).to(x.device).reshape(-1, 1, 1, 1);
        return where(mask, x.flip(3), x);
    }

    /// <summary>out[n] = Wy[n] · x[n] · Wx[n]ᵀ: a batched matmul over columns, then one over rows.</summary>
    private static Tensor SeparableResample(Tensor x, IReadOnlyList<CropBox> boxes, IReadOnlyList<bool> flips, int size)
    {
        long n = x.shape[0], c = x.shape[1];
        int height = (int)x.shape[2], width = (int)x.shape[3];
        // Weights are built on the host (cheap: a few taps per output pixel) and uploaded once per batch; building
        // them with elementwise tensor ops cost more than the resampling itself for 32-px batches on the CPU.
        var wy = PilBicubicWeights(boxes.Select(b => (b.Top, b.Height)).ToArray(), height, size, null);
        var wxT = PilBicubicWeights(boxes.Select(b => (b.Left, b.Width)).ToArray(), width, size, flips, transpose: true);
        var wyT = tensor(wy, new long[] { n, 1, size, height }).to(x.dtype, x.device);
        var wxt = tensor(wxT, new long[] { n, width, size }).to(x.dtype, x.device);
        var cols = x.reshape(n, c * height, width).bmm(wxt).reshape(n, c, height, size); // [N, C, H, S]
        return wyT.matmul(cols);                                                         // [N, C, S, S]
    }

    /// <summary>
    /// Dense resampling matrices [N, outSize, inSize] (or [N, inSize, outSize] when <paramref name="transpose"/>) for
    /// crops [start, start + length) of an axis of <paramref name="inSize"/> pixels, computed exactly as PIL's
    /// <c>precompute_coeffs</c> for the crop: output pixel k centres at c = (k + ½)·length/outSize in the crop; the
    /// filter is widened by s = max(length/outSize, 1) (antialiasing on downscale), spans ±2s; taps are the crop
    /// pixels p with ⌊c − 2s + ½⌋ ≤ p &lt; ⌊c + 2s + ½⌋, weighted f((p − c + ½)/s) with PIL's bicubic f (a = −0.5),
    /// divided by their sum. <paramref name="reverse"/>[n] mirrors the output order (a horizontal flip).
    /// </summary>
    public static float[] PilBicubicWeights(IReadOnlyList<(int Start, int Length)> crops, int inSize, int outSize,
        IReadOnlyList<bool>? reverse, bool transpose = false)
    {
        ArgumentNullException.ThrowIfNull(crops);
        if (inSize < 1 || outSize < 1) throw new ArgumentOutOfRangeException(nameof(inSize), $"Sizes must be ≥ 1; got in {inSize}, out {outSize}.");
        var w = new float[(long)crops.Count * outSize * inSize];
        for (int n = 0; n < crops.Count; n++)
        {
            var (start, length) = crops[n];
            if (length < 1 || start < 0 || start + length > inSize)
                throw new ArgumentException($"Crop {n} [{start}, {start + length}) does not lie inside [0, {inSize}).", nameof(crops));
            // The taps of the crop as an image of its own (torchvision crops, then resizes): Pillow's precompute_coeffs.
            var axis = Input.PilAxis.Compute(0, length, length, outSize);
            bool rev = reverse is not null && reverse[n];
            long baseOffset = (long)n * outSize * inSize;
            for (int k = 0; k < outSize; k++)
            {
                int row = rev ? outSize - 1 - k : k;
                for (int t = 0; t < axis.Count[k]; t++)
                {
                    int p = axis.First[k] + t;
                    long idx = transpose
                        ? baseOffset + (long)(start + p) * outSize + row
                        : baseOffset + (long)row * inSize + start + p;
                    w[idx] = (float)axis.Weights[k * axis.KSize + t];
                }
            }
        }
        return w;
    }

    /// <summary>PIL's bicubic kernel, a = −0.5, support 2.</summary>
    public static double Bicubic(double x) => Input.PilAxis.Bicubic(x);

    /// <summary>torchvision's tensor path: crop, <c>interpolate(bicubic, antialias)</c>, flip — one call per sample.</summary>
    private static Tensor PerSampleInterpolate(Tensor x, IReadOnlyList<CropBox> boxes, IReadOnlyList<bool> flips, int size)
    {
        var outs = new Tensor[boxes.Count];
        for (int n = 0; n < boxes.Count; n++)
        {
            var b = boxes[n];
            var crop = x[TensorIndex.Slice(n, n + 1), TensorIndex.Colon,
                TensorIndex.Slice(b.Top, b.Top + b.Height), TensorIndex.Slice(b.Left, b.Left + b.Width)];
            var r = nn.functional.interpolate(crop, new long[] { size, size }, mode: InterpolationMode.Bicubic,
                align_corners: false, antialias: true);
            outs[n] = flips[n] ? r.flip(3) : r;
        }
        return cat(outs, 0);
    }

    private void CheckBatch(Tensor? batch, string name)
    {
        if (batch is null) throw new ArgumentNullException(name);
        if (batch.IsInvalid) throw new ArgumentException($"{name}: the tensor has been disposed.", name);
        int c = Options.Channels, s = Options.OutputSize;
        string expected = $"[N, {c}, H, W] with H, W ≥ {s}";
        if (batch.dim() != 4)
            throw new ArgumentException($"{name} must be a 4-D image batch {expected}; got a {batch.dim()}-D tensor of shape {MaeInputs.Shape(batch)}.", name);
        if (batch.shape[0] < 1)
            throw new ArgumentException($"{name} is an empty batch (N = 0); expected {expected} with N ≥ 1.", name);
        if (batch.shape[1] != c)
            throw new ArgumentException($"{name} has {batch.shape[1]} channels; the augmentation is configured for {c} ({expected}), got shape {MaeInputs.Shape(batch)}.", name);
        if (batch.shape[2] < s || batch.shape[3] < s)
            throw new ArgumentException(
                $"{name} images are {batch.shape[2]}×{batch.shape[3]} pixels, smaller than the {s}×{s} output crop; expected H, W ≥ {s}. Resize the images first or lower OutputSize.", name);
        if (!Options.RandomResizedCrop && (batch.shape[2] != s || batch.shape[3] != s))
            throw new ArgumentException(
                $"{name} images are {batch.shape[2]}×{batch.shape[3]} pixels; with RandomResizedCrop off they must already be {s}×{s}.", name);
        if (!batch.is_floating_point())
            throw new ArgumentException($"{name} must hold floating-point pixels in [0, 1]; got dtype {batch.dtype}.", name);
        if (MaeInputs.ValueChecksDeferred(batch)) return; // inside a training step on a GPU: see MaeInputs
        // One reduction in the common case: a sum is finite when every element is (pixels in [0, 1] cannot overflow).
        using (var total = batch.sum(ScalarType.Float64))
            if (double.IsFinite(total.item<double>())) return;
        MaeInputs.CheckFinite(batch, name);
    }
}
