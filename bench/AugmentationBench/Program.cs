// Times the batched pre-training augmentation (crop + resize + flip + normalise) on the CPU:
//   dotnet run -c Release --project bench/AugmentationBench -- [batch] [inputSize] [outputSize] [threads]
// Compares the separable PIL-bicubic resampler (two batched matmuls), torchvision's tensor path (per-sample
// interpolate(bicubic, antialias)), and, as a lower bound for a one-call batched resampler, affine_grid +
// grid_sample in bilinear mode (TorchSharp 0.107 exposes no bicubic grid_sample).
using System.Diagnostics;
using Mae.MLNet.Runtime;
using Mae.MLNet.Training.Augmentation;
using TorchSharp;
using static TorchSharp.torch;

int batch = args.Length > 0 ? int.Parse(args[0]) : 64;
int inSize = args.Length > 1 ? int.Parse(args[1]) : 32;
int outSize = args.Length > 2 ? int.Parse(args[2]) : 32;
if (args.Length > 3) TorchRuntime.Threads = int.Parse(args[3]);
TorchRuntime.Seed(0);
using var images = rand(batch, 3, inSize, inSize);
Console.WriteLine($"batch {batch}, 3×{inSize}×{inSize} → {outSize}×{outSize}, {TorchRuntime.Threads} threads, {Environment.ProcessorCount} logical CPUs");
Console.WriteLine($"{"method",-36} {"ms/batch",10} {"img/s",10}");

foreach (var resampler in new[] { CropResampler.SeparablePilBicubic, CropResampler.PerSampleInterpolate })
{
    var aug = new MaePretrainAugmentation(new MaeAugmentationOptions { OutputSize = outSize, Resampler = resampler });
    Report(resampler.ToString(), () => aug.Apply(images));
}

var gridAug = new MaeAugmentationOptions { OutputSize = outSize }.Validate();
Report("GridSample (bilinear, reference)", () =>
{
    var (boxes, flips) = RandomResizedCropSampler.Sample(batch, inSize, inSize, gridAug);
    var theta = new float[batch * 6];
    for (int n = 0; n < batch; n++)
    {
        var b = boxes[n];
        theta[6 * n + 0] = (flips[n] ? -1f : 1f) * b.Width / inSize;
        theta[6 * n + 2] = (2f * b.Left + b.Width) / inSize - 1;
        theta[6 * n + 4] = (float)b.Height / inSize;
        theta[6 * n + 5] = (2f * b.Top + b.Height) / inSize - 1;
    }
    using var t = tensor(theta, new long[] { batch, 2, 3 });
    using var grid = nn.functional.affine_grid(t, new long[] { batch, 3, outSize, outSize }, align_corners: false);
    using var x = nn.functional.grid_sample(images, grid, GridSampleMode.Bilinear, GridSamplePaddingMode.Border, align_corners: false);
    using var mean = tensor(new[] { 0.485f, 0.456f, 0.406f }, new long[] { 1, 3, 1, 1 });
    using var std = tensor(new[] { 0.229f, 0.224f, 0.225f }, new long[] { 1, 3, 1, 1 });
    using var c = x.clamp(0.0, 1.0);
    using var d = c - mean;
    return d / std;
});

void Report(string name, Func<Tensor> run)
{
    for (int i = 0; i < 5; i++) using (var scope = NewDisposeScope()) run();
    int iters = 0;
    var sw = Stopwatch.StartNew();
    while (sw.Elapsed.TotalSeconds < 2 || iters < 10)
    {
        using var scope = NewDisposeScope();
        run();
        iters++;
    }
    double ms = sw.Elapsed.TotalMilliseconds / iters;
    Console.WriteLine($"{name,-36} {ms,10:F3} {batch * 1000.0 / ms,10:F0}");
}
