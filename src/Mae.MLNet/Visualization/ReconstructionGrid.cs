using System.Runtime.InteropServices;
using SkiaSharp;
using Mae.MLNet.Model;
using static TorchSharp.torch;

namespace Mae.MLNet.Visualization;

public static partial class ReconstructionGrid
{
    /// <summary>Layout of a <see cref="ReconstructionGrid"/> picture.</summary>
    public sealed class Options
    {
        /// <summary>Each image pixel becomes Scale × Scale picture pixels (nearest neighbour). 0 = automatic: the smallest
        /// factor that makes a cell at least 96 pixels wide.</summary>
        public int Scale { get; set; }
        /// <summary>White space between cells and around the grid, in picture pixels. Default 2.</summary>
        public int Padding { get; set; } = 2;
        /// <summary>Grey level in [0, 1] painted over removed patches in the masked column. Default 0.5.</summary>
        public float MaskedGrey { get; set; } = 0.5f;

        public int ResolvedScale(int imageWidth) => Scale > 0 ? Scale : Math.Max(1, (96 + imageWidth - 1) / imageWidth);

        public Options Validate()
        {
            if (Scale < 0) throw new ArgumentOutOfRangeException(nameof(Scale), Scale, $"Scale must be ≥ 0 (0 = automatic); got {Scale}.");
            if (Padding < 0) throw new ArgumentOutOfRangeException(nameof(Padding), Padding, $"Padding must be ≥ 0; got {Padding}.");
            if (!(MaskedGrey >= 0 && MaskedGrey <= 1))
                throw new ArgumentOutOfRangeException(nameof(MaskedGrey), MaskedGrey, $"MaskedGrey must be in [0, 1]; got {MaskedGrey}.");
            return this;
        }
    }
}

/// <summary>
/// The paper's Fig. 3 as a PNG: one row per image; columns masked input (removed patches grey), reconstruction,
/// reconstruction with the visible patches pasted from the original, original. Pixels are mapped back from the
/// model's input units with <c>x·std + mean</c> per channel, clamped to [0, 1] and rounded to 8 bits; one channel
/// is drawn as grey. Encoded with SkiaSharp.
/// </summary>
public static partial class ReconstructionGrid
{
    public const int Columns = 4;

    /// <summary>Writes the grid to <paramref name="path"/> (PNG). <paramref name="mean"/>/<paramref name="std"/>: the
    /// per-channel normalisation the images carry (e.g. <see cref="PixelNormalization.ImageNetMean"/>).</summary>
    public static void SavePng(string path, MaeReconstruction.Result result, IReadOnlyList<float> mean, IReadOnlyList<float> std,
        ReconstructionGrid.Options? options = null)
    {
        if (string.IsNullOrWhiteSpace(path)) throw new ArgumentException("A file path is required.", nameof(path));
        var (width, height, rgba) = Render(result, mean, std, options);
        var info = new SKImageInfo(width, height, SKColorType.Rgba8888, SKAlphaType.Opaque);
        using var bitmap = new SKBitmap(info);
        Marshal.Copy(rgba, 0, bitmap.GetPixels(), rgba.Length);
        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100)
            ?? throw new InvalidOperationException("SkiaSharp could not encode the PNG.");
        var dir = Path.GetDirectoryName(Path.GetFullPath(path));
        if (!string.IsNullOrEmpty(dir)) Directory.CreateDirectory(dir);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>Same as <see cref="SavePng(string, MaeReconstruction.Result, IReadOnlyList{float}, IReadOnlyList{float}, ReconstructionGrid.Options?)"/>
    /// with the mean and std of <paramref name="normalisation"/> (e.g. an augmentation's <see cref="Input.MaeAugmentationOptions.ResolvedNormalization"/>).</summary>
    public static void SavePng(string path, MaeReconstruction.Result result, PixelNormalization normalisation, ReconstructionGrid.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(normalisation);
        SavePng(path, result, normalisation.Mean, normalisation.Std, options);
    }

    /// <summary>The grid as 8-bit RGBA rows (width × height × 4 bytes), before encoding.</summary>
    public static (int Width, int Height, byte[] Rgba) Render(MaeReconstruction.Result result, IReadOnlyList<float> mean, IReadOnlyList<float> std,
        ReconstructionGrid.Options? options = null)
    {
        ArgumentNullException.ThrowIfNull(result);
        ArgumentNullException.ThrowIfNull(mean);
        ArgumentNullException.ThrowIfNull(std);
        var o = (options ?? new ReconstructionGrid.Options()).Validate();
        var shape = result.Original.shape;
        if (shape.Length != 4) throw new ArgumentException($"Expected [N, C, H, W] images; got [{string.Join(", ", shape)}].", nameof(result));
        int n = (int)shape[0], c = (int)shape[1], h = (int)shape[2], w = (int)shape[3];
        if (c != 1 && c != 3) throw new ArgumentException($"Only 1- or 3-channel images can be drawn; got {c} channels.", nameof(result));
        if (mean.Count != c || std.Count != c)
            throw new ArgumentException($"mean and std need one value per channel ({c}); got {mean.Count} and {std.Count}.", nameof(mean));
        foreach (var t in new[] { result.Masked, result.Reconstruction, result.Pasted })
            if (!t.shape.SequenceEqual(shape))
                throw new ArgumentException($"All pictures must have the shape [{string.Join(", ", shape)}]; got [{string.Join(", ", t.shape)}].", nameof(result));
        if (!result.Mask.shape.SequenceEqual(new long[] { n, 1, h, w }))
            throw new ArgumentException($"Mask must be [{n}, 1, {h}, {w}]; got [{string.Join(", ", result.Mask.shape)}].", nameof(result));

        int scale = o.ResolvedScale(w), pad = o.Padding;
        int cellW = w * scale, cellH = h * scale;
        int width = Columns * cellW + (Columns + 1) * pad;
        int height = n * cellH + (n + 1) * pad;
        if ((long)width * height > 1L << 28)
            throw new ArgumentException($"The grid would be {width}×{height} pixels; use fewer images or a smaller Scale.", nameof(options));
        var rgba = new byte[(long)width * height * 4];
        Array.Fill(rgba, (byte)255);

        float[] maskValues = Floats(result.Mask);
        var columns = new[] { Floats(result.Masked), Floats(result.Reconstruction), Floats(result.Pasted), Floats(result.Original) };
        byte grey = ToByte(o.MaskedGrey);
        Span<byte> px = stackalloc byte[3];
        for (int col = 0; col < Columns; col++)
        {
            var values = columns[col];
            for (int img = 0; img < n; img++)
            {
                int x0 = pad + col * (cellW + pad), y0 = pad + img * (cellH + pad);
                for (int y = 0; y < h; y++)
                    for (int x = 0; x < w; x++)
                    {
                        bool removed = col == 0 && maskValues[(img * h + y) * w + x] > 0.5f;
                        for (int ch = 0; ch < 3; ch++)
                        {
                            int src = c == 1 ? 0 : ch;
                            px[ch] = removed ? grey
                                : ToByte(values[((img * c + src) * h + y) * w + x] * std[src] + mean[src]);
                        }
                        for (int dy = 0; dy < scale; dy++)
                        {
                            long row = (long)(y0 + y * scale + dy) * width;
                            for (int dx = 0; dx < scale; dx++)
                            {
                                long at = (row + x0 + x * scale + dx) * 4;
                                rgba[at] = px[0]; rgba[at + 1] = px[1]; rgba[at + 2] = px[2]; rgba[at + 3] = 255;
                            }
                        }
                    }
            }
        }
        return (width, height, rgba);
    }

    /// <summary>Top-left picture pixel of image <paramref name="row"/>, column <paramref name="column"/>, image pixel (y, x).</summary>
    public static (int X, int Y) PixelOrigin(int row, int column, int y, int x, int scale, int padding, int imageHeight, int imageWidth)
        => (padding + column * (imageWidth * scale + padding) + x * scale, padding + row * (imageHeight * scale + padding) + y * scale);

    private static byte ToByte(float v)
    {
        if (!(v > 0)) return 0; // also NaN
        if (v >= 1) return 255;
        return (byte)MathF.Round(v * 255f, MidpointRounding.AwayFromZero);
    }

    private static float[] Floats(Tensor t)
    {
        using var scope = NewDisposeScope();
        return t.detach().to(ScalarType.Float32, CPU).contiguous().data<float>().ToArray();
    }
}
