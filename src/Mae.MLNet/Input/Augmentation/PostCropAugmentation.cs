namespace Mae.MLNet.Input;

/// <summary>
/// What follows the crop and flip of one training image, in timm's <c>create_transform</c> order: RandAugment on the
/// 8-bit crop (<see cref="MaeAugmentationOptions.RandAugment"/>), ToTensor + Normalize (a float32 lookup table per
/// channel), random erasing on the normalised result (<see cref="MaeAugmentationOptions.RandomErasingProbability"/>).
/// Written once for both input paths: the file sources' decode workers call it on the bytes they resampled, the tensor
/// path (<see cref="MaePretrainAugmentation"/>) on its crops rounded to bytes. One instance per thread (it owns a
/// scratch buffer).
/// </summary>
internal sealed unsafe class PostCropAugmentation
{
    readonly MaeAugmentationOptions options;
    readonly float[] lut;
    readonly byte[] fill;
    byte[] scratch = Array.Empty<byte>();

    public PostCropAugmentation(MaeAugmentationOptions options)
    {
        this.options = options;
        lut = Lut(options);
        fill = RandAugment.Fill(options);
    }

    /// <summary>True when a training image needs more than ToTensor + Normalize.</summary>
    public static bool Active(MaeAugmentationOptions o) => o.RandAugment is not null || o.RandomErasingProbability > 0;

    /// <summary>Uniforms per training image: RandAugment's, then random erasing's.</summary>
    public static int Draws(MaeAugmentationOptions o)
        => (o.RandAugment is { } ra ? RandAugment.Draws(ra) : 0) + (o.RandomErasingProbability > 0 ? RandomErasing.Draws : 0);

    /// <summary>The float value of each byte per channel: ToTensor (v / 255 in float32), then Normalize.</summary>
    public static float[] Lut(MaeAugmentationOptions aug)
    {
        var normalization = aug.ResolvedNormalization();
        var t = new float[aug.Channels * 256];
        for (int c = 0; c < aug.Channels; c++)
            for (int v = 0; v < 256; v++) t[c * 256 + v] = normalization.Apply(v / 255f, c);
        return t;
    }

    /// <summary>Writes <paramref name="img"/> to <paramref name="dst"/> ([C, H, W] float32); for a training image also
    /// runs RandAugment (on <paramref name="img"/>, in place) and random erasing, drawn from <paramref name="u"/>
    /// (<see cref="Draws"/> uniforms).</summary>
    public void Apply(ByteImage img, bool training, ReadOnlySpan<double> u, float* dst)
    {
        var ra = options.RandAugment;
        if (training && ra is not null)
        {
            long bytes = (long)img.Pixels * img.PixelStride;
            if (scratch.Length < bytes) scratch = new byte[bytes];
            RandAugment.Apply(img, RandAugment.Plan(ra, u), fill, scratch);
            u = u.Slice(RandAugment.Draws(ra));
        }
        int plane = img.Pixels;
        fixed (float* table = lut)
            for (int c = 0; c < img.Channels; c++)
            {
                float* t = table + c * 256;
                float* o = dst + (long)c * plane;
                byte* s = img.Data + c;
                for (int i = 0; i < plane; i++, s += img.PixelStride) o[i] = t[*s];
            }
        if (training && options.RandomErasingProbability > 0)
            RandomErasing.Apply(dst, img.Channels, img.Height, img.Width, options.RandomErasingProbability, u);
    }
}
