//! `strata failures`.

use strata::ops::failures::list;

use crate::render::{ago, table};

/// Arguments of `strata failures`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Print a JSON array of the records instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Lists the failure records, newest first: ID, CREATED, IMAGE/STAGE, STEP, EXIT, PUSHED TO.
pub fn exec(ctx: &strata::Context, args: Args) -> anyhow::Result<i32> {
    let records = list(ctx)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&records)?);
        return Ok(0);
    }
    let rows: Vec<Vec<String>> = records
        .iter()
        .map(|r| {
            vec![
                r.id.clone(),
                ago((r.created_millis / 1000) as i64),
                format!("{}/{}", r.image, r.stage),
                table::ellipsis(&r.step, 40),
                r.exit_code.to_string(),
                r.remote.clone().unwrap_or_default(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(
            &["ID", "CREATED", "IMAGE/STAGE", "STEP", "EXIT", "PUSHED TO"],
            &rows
        )
    );
    Ok(0)
}
