using System.Diagnostics;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.MLNet.Benchmarks;

/// <summary>
/// The batched pre-training augmentation (crop + resize + flip + normalise) on the CPU, per resampler
/// (`--bench augmentation --aug-batch 64 --aug-in 32 --aug-out 32`): the separable PIL-bicubic resampler (two batched
/// matmuls), torchvision's tensor path (per-sample interpolate(bicubic, antialias)), and, as a lower bound for a one-call
/// batched resampler, affine_grid + grid_sample in bilinear mode (TorchSharp 0.107 exposes no bicubic grid_sample).
/// </summary>
public static class AugmentationBenchmark
{
    public static void Run(int batch, int inSize, int outSize, TextWriter output)
    {
        using var images = rand(batch, 3, inSize, inSize);
        output.WriteLine($"## Pre-training augmentation, batch {batch}, 3×{inSize}×{inSize} → {outSize}×{outSize}");
        output.WriteLine();
        output.WriteLine("| method | ms/batch | img/s |");
        output.WriteLine("|---|---:|---:|");
        foreach (var resampler in new[] { CropResampler.SeparablePilBicubic, CropResampler.PerSampleInterpolate })
        {
            var aug = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = outSize, Resampler = resampler });
            Report(resampler.ToString(), batch, () => aug.Apply(images), output);
        }
        var options = new MaeAugmentationOptions { OutputSize = outSize }.Validate();
        Report("GridSample (bilinear, lower bound)", batch, () => GridSample(images, options, outSize), output);
        output.WriteLine();
        FineTuning(images, outSize, output);
    }

    /// <summary>The fine-tuning transform without and with the reference's RandAugment + random erasing (which round the
    /// crops to 8 bits and finish them per image on the CPU), alternating in 7 rounds of 20 batches; medians and ratio.</summary>
    static void FineTuning(Tensor images, int outSize, TextWriter output)
    {
        int batch = (int)images.shape[0];
        var plain = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = outSize, ScaleMin = 0.08 });
        var full = new MaePretrainAugmentation(new MaeAugmentationOptions
        {
            OutputSize = outSize, ScaleMin = 0.08, RandAugment = MaeAugmentationOptions.RandAugmentOptions.Reference, RandomErasingProbability = 0.25,
        });
        var variants = new (string Name, MaePretrainAugmentation Aug, List<double> Ms)[]
        {
            ("crop + flip + normalise", plain, new()), ("… + RandAugment rand-m9-mstd0.5-inc1 + erasing 0.25", full, new()),
        };
        foreach (var v in variants) for (int i = 0; i < 5; i++) using (NewDisposeScope()) v.Aug.Apply(images);
        for (int round = 0; round < 7; round++)
            foreach (var v in variants)
            {
                var sw = Stopwatch.StartNew();
                for (int i = 0; i < 20; i++) using (NewDisposeScope()) v.Aug.Apply(images);
                v.Ms.Add(sw.Elapsed.TotalMilliseconds / 20);
            }
        output.WriteLine($"## Fine-tuning augmentation, batch {batch}, 3×{images.shape[2]}² → {outSize}², one thread, 7 alternating rounds");
        output.WriteLine();
        output.WriteLine("| transform | ms/batch (median) | img/s | ratio |");
        output.WriteLine("|---|---:|---:|---:|");
        double baseMs = Median(variants[0].Ms);
        foreach (var v in variants)
        {
            double ms = Median(v.Ms);
            output.WriteLine($"| {v.Name} | {ms:F3} | {batch * 1000.0 / ms:F0} | {ms / baseMs:F2} |");
        }
        output.WriteLine();
        PerOp(outSize, output);
    }

    /// <summary>Each RandAugment op alone on one 8-bit RGB image of the output size (RGBA layout, as the decode workers
    /// hold it), at magnitude 9: µs per image.</summary>
    static unsafe void PerOp(int size, TextWriter output)
    {
        var source = new byte[size * size * 4];
        new Random(1).NextBytes(source);
        var pixels = new byte[source.Length];
        var scratch = new byte[pixels.Length];
        byte[] fill = { 124, 116, 104 };
        output.WriteLine($"| op, one {size}×{size} image | µs |");
        output.WriteLine("|---|---:|");
        foreach (var op in Enum.GetValues<RandAugmentOp>())
        {
            double arg = RandAugment.Level(op, 9, true, false);
            int n = 0;
            var sw = Stopwatch.StartNew();
            fixed (byte* p = pixels)
                while (sw.ElapsedMilliseconds < 200)
                {
                    source.CopyTo(pixels, 0);   // the same random content each time
                    RandAugment.Apply(new ByteImage(p, size, size, 4, 3), op, arg, fill, scratch);
                    n++;
                }
            output.WriteLine($"| {op} | {sw.Elapsed.TotalMilliseconds * 1000 / n:F1} |");
        }
        output.WriteLine();
    }

    static double Median(List<double> x) => x.Order().ElementAt(x.Count / 2);

    static Tensor GridSample(Tensor images, MaeAugmentationOptions options, int outSize)
    {
        int batch = (int)images.shape[0], inSize = (int)images.shape[2];
        var (boxes, flips) = RandomResizedCropSampler.Sample(batch, inSize, inSize, options);
        var theta = new float[batch * 6];
        for (int n = 0; n < batch; n++)
        {
            var b = boxes[n];
            theta[6 * n + 0] = (flips[n] ? -1f : 1f) * b.Width / inSize;
            theta[6 * n + 2] = (2f * b.Left + b.Width) / inSize - 1;
            theta[6 * n + 4] = (float)b.Height / inSize;
            theta[6 * n + 5] = (2f * b.Top + b.Height) / inSize - 1;
        }
        var t = tensor(theta, new long[] { batch, 2, 3 });
        var grid = nn.functional.affine_grid(t, new long[] { batch, 3, outSize, outSize }, align_corners: false);
        var x = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
        return options.ResolvedNormalization().Apply(x.clamp(0.0, 1.0));
    }

    /// <summary>5 warm-up calls, then at least 2 s and 10 calls; each call in its own dispose scope.</summary>
    static void Report(string name, int batch, Func<Tensor> run, TextWriter output)
    {
        for (int i = 0; i < 5; i++) using (NewDisposeScope()) run();
        int iters = 0;
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < 2 || iters < 10)
        {
            using var scope = NewDisposeScope();
            run();
            iters++;
        }
        double ms = sw.Elapsed.TotalMilliseconds / iters;
        output.WriteLine($"| {name} | {ms:F3} | {batch * 1000.0 / ms:F0} |");
    }
}
