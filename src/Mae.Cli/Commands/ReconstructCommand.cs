using System.CommandLine;
using Mae.MLNet.Interop;
using Mae.MLNet.Model;
using Mae.MLNet.Runtime;
using Mae.MLNet.Visualization;
using Mae.MLNet.Input;
using static TorchSharp.torch;

namespace Mae.Cli.Commands;

/// <summary><c>mae reconstruct --weights W --images DIR --out grid.png</c>: the paper's Fig. 2 picture (masked,
/// reconstruction, reconstruction pasted into the visible patches, original) for the first images of a folder.</summary>
public static class ReconstructCommand
{
    public static Command Create(CliContext context)
    {
        var weights = CommonOptions.Weights(required: true);
        var images = CommonOptions.Images("A folder of images (and/or class sub-folders); --count of them, spread evenly over the sorted list, are drawn.");
        var output = new Option<FileInfo>("--out") { Description = "The PNG to write (not one of the input images).", Required = true };
        var count = new Option<int>("--count") { Description = "How many images (rows of the grid), at most 256.", DefaultValueFactory = _ => 8 };
        var maskRatio = new Option<double>("--mask-ratio") { Description = "Fraction of patches removed.", DefaultValueFactory = _ => 0.75 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var seed = CommonOptions.Seed();
        var skipBad = CommonOptions.SkipBadFiles();
        var command = new Command("reconstruct", "Draw masked images and their reconstructions (needs weights with the decoder: mae.safetensors or a .maeckpt).")
        {
            weights, images, output, count, maskRatio, size, heads, seed, skipBad,
        };
        command.SetAction(r =>
        {
            string folder = r.GetValue(images)!.FullName;
            var files = MaeImageFolder.ListImages(folder);
            string target = CliFiles.OutputFile(r.GetValue(output)!, "--out", files, ".png");
            int n = r.GetValue(count);
            if (n is < 1 or > 256) throw new CliException($"--count must be between 1 and 256; got {n}.");
            double ratio = r.GetValue(maskRatio);
            if (!(ratio >= 0 && ratio < 1)) throw new CliException($"--mask-ratio must be in [0, 1); got {ratio}.");
            using var path = CliWeights.Resolve(r.GetValue(weights)!);
            using var model = MaeWeightFile.LoadMaskedAutoencoder(path.Path, imageSize: CommonOptions.CheckInputSize(r.GetValue(size)), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            model.eval();
            using var scope = NewDisposeScope();
            var (x, norm, skipped) = SpreadImages(files, n, model.Config, r.GetValue(skipBad));
            TorchRuntime.Seed(r.GetValue(seed));
            CliFiles.WriteAtomically(target, temporary => Draw(model, x, ratio, rand(x.shape[0], model.Config.NumPatches), norm, temporary));
            foreach (var s in skipped) context.Output.WriteLine($"skipped {s.FileName}: {s.Reason}");
            context.Output.WriteLine($"wrote {target}: {x.shape[0]} image(s), mask ratio {ratio}");
            return 0;
        });
        return command;
    }

    /// <summary><paramref name="count"/> images spread evenly over <paramref name="files"/> (file i·n/count: a
    /// class-per-folder set shows several classes, not the first class's first files) through the reference's evaluation
    /// transform (shorter side to size/0.875, centre crop, normalise): [n, C, H, W] on the CPU, in the caller's scope.
    /// With <paramref name="skip"/> a bad file is replaced by the next readable one (and listed), else it stops the command.</summary>
    internal static (Tensor Images, PixelNormalization Norm, IReadOnlyList<MaeImageFileSource.SkippedFile> Skipped) SpreadImages(
        IReadOnlyList<string> files, int count, MaeConfig config, bool skip)
    {
        var picked = Spread(files.Count, count).Select(i => files[i]).ToList();
        int n = picked.Count;
        var norm = PixelNormalization.Default(config.InChannels);
        var source = MaeImageFileSource.FromPaths(picked, new MaeImageInputOptions
        {
            Augmentation = new MaeAugmentationOptions { OutputSize = config.ImageSize, Channels = config.InChannels, Normalization = norm },
            SkipBadFiles = skip,
        });
        var images = source.Batches(new MaeEpochPlan { BatchSize = n, Training = false }).Single();
        return (images, norm, source.SkippedFiles);
    }

    /// <summary>min(count, total) indices spread evenly over [0, total): i · total / n.</summary>
    internal static int[] Spread(int total, int count)
    {
        int n = Math.Min(count, total);
        return Enumerable.Range(0, n).Select(i => (int)((long)i * total / n)).ToArray();
    }

    /// <summary>Masks with <paramref name="noise"/> [n, L] (small = kept), reconstructs without gradients and writes the
    /// grid: masked, reconstruction, reconstruction pasted into the visible patches, original.</summary>
    internal static void Draw(MaskedAutoencoder model, Tensor images, double maskRatio, Tensor noise, PixelNormalization norm, string target)
    {
        using var noGrad = no_grad();
        using var result = MaeReconstruction.Compute(model, images, maskRatio, noise);
        ReconstructionGrid.SavePng(target, result, norm);
    }
}
