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
        var images = CommonOptions.Images("A folder of images (and/or class sub-folders); the first --count, in name order, are drawn.");
        var output = new Option<FileInfo>("--out") { Description = "The PNG to write.", Required = true };
        var count = new Option<int>("--count") { Description = "How many images (rows of the grid).", DefaultValueFactory = _ => 8 };
        var maskRatio = new Option<double>("--mask-ratio") { Description = "Fraction of patches removed.", DefaultValueFactory = _ => 0.75 };
        var size = CommonOptions.ImageSize();
        var heads = CommonOptions.Heads();
        var seed = CommonOptions.Seed();
        var command = new Command("reconstruct", "Draw masked images and their reconstructions (needs weights with the decoder).")
        {
            weights, images, output, count, maskRatio, size, heads, seed,
        };
        command.SetAction(r =>
        {
            string path = CommonOptions.InputFile(r.GetValue(weights)!, "--weights");
            string target = CommonOptions.OutputFile(r.GetValue(output)!, "--out", ".png");
            int n = r.GetValue(count);
            if (n < 1) throw new CliException($"--count must be at least 1; got {n}.");
            double ratio = r.GetValue(maskRatio);
            if (!(ratio >= 0 && ratio < 1)) throw new CliException($"--mask-ratio must be in [0, 1); got {ratio}.");
            using var model = MaeWeightFile.LoadMaskedAutoencoder(path, imageSize: r.GetValue(size), heads: CommonOptions.ParseHeads(r.GetValue(heads)));
            model.eval();
            string folder = r.GetValue(images)!.FullName;
            using var scope = NewDisposeScope();
            var (x, norm) = FirstImages(folder, n, model.Config);
            TorchRuntime.Seed(r.GetValue(seed));
            Draw(model, x, ratio, rand(x.shape[0], model.Config.NumPatches), norm, target);
            int drawn = (int)x.shape[0];
            context.Output.WriteLine($"wrote {target}: {drawn} image(s), mask ratio {ratio}");
            return 0;
        });
        return command;
    }

    /// <summary>The first <paramref name="count"/> images of a folder (name order) through the reference's evaluation
    /// transform (shorter side to size/0.875, centre crop, normalise): [n, C, H, W] on the CPU, in the caller's scope.</summary>
    internal static (Tensor Images, PixelNormalization Norm) FirstImages(string folder, int count, MaeConfig config)
    {
        var rows = ImageFolder.List(folder, requireClasses: false).Take(count).ToList();
        var norm = PixelNormalization.Default(config.InChannels);
        var files = MaeImageFileSource.FromPaths(rows.Select(x => x.Path), new MaeImageInputOptions
        {
            Augmentation = new MaeAugmentationOptions { OutputSize = config.ImageSize, Channels = config.InChannels, Normalization = norm },
        });
        return (files.Batches(new MaeEpochPlan { BatchSize = rows.Count, Training = false }).Single(), norm);
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
