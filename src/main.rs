use freqtag::{data, engine::EngineConfig, evaluate, model::Model};
fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let dd = data::data_dir()?;
    let m = Model::load(&args[1], dd.as_deref())?;
    let c = data::Cifar10::load(dd.as_deref().unwrap(), data::Split::Test)?;
    let idx: Vec<usize> = (0..c.len()).collect();
    let t = std::time::Instant::now();
    let a = evaluate::evaluate(&m, &c, &idx, &EngineConfig { threads: 2, batch: 100, cuda: false }, |_| {})?;
    println!("{} {:.2} {:?} in {:?}", m.name, a.top1, a.per_class, t.elapsed());
    Ok(())
}
